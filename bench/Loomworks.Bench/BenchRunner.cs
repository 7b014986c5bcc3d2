using System.Diagnostics;
using System.Globalization;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>A measured scenario: our timings beside a baseline's, taken in the same run.</summary>
public sealed record ScenarioResult(string Name, IReadOnlyList<double> OursMs, IReadOnlyList<double> BaselineMs, string Baseline,
    string? Note = null);

/// <summary>A benchmark scenario; it runs ours and the baseline alternately so that drift hits both alike.</summary>
public interface IScenario
{
    string Name { get; }
    string Description { get; }
    Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken);

    /// <summary>The runs without --runs.</summary>
    int DefaultRuns => 5;
}

public static class BenchRunner
{
    private static readonly TenantScaleScenario TenantScale = new();
    private static readonly IScenario[] Scenarios =
    [
        new ClusterColdStartScenario(),
        new TenantProvisionScenario(),
        new TenantRoutingScenario(),
        TenantScale,
        new DatabaseManagerScenario(),
        new OperationsScenario(),
        new OperationsRpcScenario(),
        new RpcSearchReadScenario(),
        new McpScenario(),
        new RpcBodiesScenario(),
        new ManyTenantsScenario(),
        new SnapshotCreateScenario(),
        new TenantRestoreScenario(),
        new ConsoleScenario(),
    ];

    /// <summary>--size N: megabytes of the tenant the database-manager scenario works on.</summary>
    public static int SizeMb { get; private set; } = 100;

    public static async Task<int> RunAsync(string[] args)
    {
        int? runs = null;
        var names = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length && int.TryParse(args[++i], CultureInfo.InvariantCulture, out var n) && n > 0)
            {
                runs = n;
            }
            else if (args[i] == "--size" && i + 1 < args.Length && int.TryParse(args[++i], CultureInfo.InvariantCulture, out var mb)
                && mb > 0)
            {
                SizeMb = mb;
            }
            else if (args[i] == "--tenants")
            {
                if (i + 1 >= args.Length || !int.TryParse(args[++i], CultureInfo.InvariantCulture, out var t)
                    || !TenantScaleScenario.IsAcceptable(t))
                {
                    await Console.Error.WriteLineAsync("--tenants takes a whole number from 1 to 10000");
                    return 2;
                }
                TenantScale.Tenants = t;
            }
            else if (args[i] is "--help" or "-h")
            {
                PrintHelp();
                return 0;
            }
            else
            {
                names.Add(args[i]);
            }
        }
        var unknown = names.Where(n => Scenarios.All(s => s.Name != n)).ToList();
        if (unknown.Count > 0)
        {
            await Console.Error.WriteLineAsync($"unknown scenario(s): {string.Join(", ", unknown)}");
            PrintHelp();
            return 2;
        }
        var selected = names.Count == 0 ? Scenarios : Scenarios.Where(s => names.Contains(s.Name)).ToArray();
        var results = new List<ScenarioResult>();
        foreach (var scenario in selected)
        {
            var scenarioRuns = runs ?? scenario.DefaultRuns;
            await Console.Error.WriteLineAsync($"running {scenario.Name} ({scenarioRuns} runs)…");
            results.AddRange(await scenario.RunAsync(scenarioRuns, CancellationToken.None));
        }
        Console.WriteLine("| scenario | ours median (ms) | baseline | baseline median (ms) | ratio | runs |");
        Console.WriteLine("|---|---:|---|---:|---:|---:|");
        foreach (var r in results)
        {
            var ours = Median(r.OursMs);
            var baseline = Median(r.BaselineMs);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Name} | {ours:F1} | {r.Baseline} | {baseline:F1} | {ours / baseline:F2} | {r.OursMs.Count} |"));
            if (r.Note is not null)
            {
                Console.WriteLine($"<!-- {r.Note} -->");
            }
        }
        return 0;
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static async Task<double> TimeAsync(Func<Task> action)
    {
        var watch = Stopwatch.StartNew();
        await action();
        return watch.Elapsed.TotalMilliseconds;
    }

    /// <summary>
    /// Lets the disk catch up before a timed step: a checkpoint, then every dirty page of the machine written out, so
    /// no step pays for the writes of the one before it.
    /// </summary>
    public static async Task SettleAsync(PooledDatabase admin)
    {
        await using (var checkpoint = admin.CreateCommand("CHECKPOINT"))
        {
            await checkpoint.ExecuteNonQueryAsync();
        }
        var sync = await CommandRunner.RunAsync("/bin/sync", []);
        if (!sync.Succeeded)
        {
            throw new InvalidOperationException($"sync failed: {sync.Diagnostic}");
        }
    }

    private static void PrintHelp()
    {
        Console.WriteLine("usage: Loomworks.Bench [scenario…] [--runs N] [--size MB]");
        Console.WriteLine("usage: Loomworks.Bench [scenario…] [--runs N] [--tenants N (tenant-scale, 1-10000)]");
        foreach (var s in Scenarios)
        {
            Console.WriteLine($"  {s.Name,-24} {s.Description}");
        }
    }
}
