using System.Globalization;

namespace Loomworks.Bench;

/// <summary>
/// Provisioning one tenant (template already prepared) beside a bare <c>CREATE DATABASE … TEMPLATE</c> of the same
/// template, alternately in one durable cluster. Target: median under 300 ms and within 2× of the bare create.
/// </summary>
public sealed class TenantProvisionScenario : IScenario
{
    private const double TargetMs = 300;
    private const double TargetRatio = 2;

    public string Name => "tenant-provision";
    public string Description => "TenantProvisioner.CreateAsync vs a bare CREATE DATABASE … TEMPLATE of the same template";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        var ours = new List<double>();
        var baseline = new List<double>();
        await using var bench = await TenancyBench.StartAsync(cancellationToken);
        await using var server = await bench.OpenServerConnectionAsync(cancellationToken);
        // One untimed round of each: first-use costs (pools, JIT, PBKDF2 code paths) are not steady state.
        await bench.Provisioner.CreateAsync(TenancyBench.Request("warmup"), cancellationToken);
        await TenancyBench.BareCreateAsync(server, "bare_warmup", cancellationToken);
        for (var i = 0; i < runs; i++)
        {
            var subdomain = string.Create(CultureInfo.InvariantCulture, $"prov{i:D4}");
            ours.Add(await BenchRunner.TimeAsync(() => bench.Provisioner.CreateAsync(TenancyBench.Request(subdomain), cancellationToken)));
            baseline.Add(await TenancyBench.BareCreateAsync(server, string.Create(CultureInfo.InvariantCulture, $"bare{i:D4}"), cancellationToken));
        }
        var median = BenchRunner.Median(ours);
        var ratio = median / BenchRunner.Median(baseline);
        var note = string.Create(CultureInfo.InvariantCulture,
            $"tenant-provision: ours p90 {TenancyBench.Percentile(ours, 0.9):F1} ms, bare p90 {TenancyBench.Percentile(baseline, 0.9):F1} ms; " +
            $"ratio {ratio:F2}; target median < {TargetMs:F0} ms {(median < TargetMs ? "met" : "NOT met")}, " +
            $"within {TargetRatio:F0}x of bare {(ratio <= TargetRatio ? "met" : "NOT met")}");
        return [new ScenarioResult(Name, ours, baseline, "bare CREATE DATABASE … TEMPLATE", note)];
    }
}
