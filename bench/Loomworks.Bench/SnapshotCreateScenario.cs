using System.Diagnostics;
using System.Globalization;
using Loomworks.Snapshots;

namespace Loomworks.Bench;

/// <summary>
/// Snapshot creation: the call (restore point, WAL switch, row) and the time until it is ready (segment archived),
/// beside the bare SQL: pg_create_restore_point + pg_switch_wal, and the same followed by the archive wait.
/// </summary>
public sealed class SnapshotCreateScenario : IScenario
{
    public string Name => "snapshot-create";
    public string Description => "snapshot call and time-to-ready vs bare restore point + WAL switch (+ archived)";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await PitrCluster.StartAsync(55620);
        await cluster.CreateTenantAsync("bench-snap", 10);
        var calls = new List<double>();
        var ready = new List<double>();
        var bareCalls = new List<double>();
        var bareReady = new List<double>();
        var samples = Math.Max(runs, 20);
        for (var i = 0; i < samples; i++)
        {
            await cluster.ExecuteAsync("bench-snap", "INSERT INTO record (body) VALUES ('x')");
            var watch = Stopwatch.StartNew();
            var snapshot = await cluster.Feature.Snapshots.CreateAsync("bench-snap", null, SnapshotTypes.Manual, cancellationToken);
            calls.Add(watch.Elapsed.TotalMilliseconds);
            snapshot = await cluster.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(60), cancellationToken);
            ready.Add(watch.Elapsed.TotalMilliseconds);
            if (snapshot.State != "ready")
            {
                throw new InvalidOperationException($"snapshot {snapshot.Id} is {snapshot.State}");
            }

            await cluster.ExecuteAsync("bench-snap", "INSERT INTO record (body) VALUES ('x')");
            watch.Restart();
            string segment;
            await using (var command = cluster.DataSources.For("postgres").CreateCommand(
                "SELECT pg_walfile_name(pg_create_restore_point('bare')); SELECT pg_switch_wal()"))
            {
                segment = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
            }
            bareCalls.Add(watch.Elapsed.TotalMilliseconds);
            while (true)
            {
                await using var poll = cluster.DataSources.For("postgres").CreateCommand(
                    "SELECT coalesce(last_archived_wal >= $1, false) FROM pg_stat_archiver");
                poll.Parameters.AddWithValue(segment);
                if ((bool)(await poll.ExecuteScalarAsync(cancellationToken))!)
                {
                    break;
                }
                await Task.Delay(20, cancellationToken);
            }
            bareReady.Add(watch.Elapsed.TotalMilliseconds);
        }
        return
        [
            new ScenarioResult("snapshot-create call", calls, bareCalls, "restore point + switch (SQL)",
                string.Create(CultureInfo.InvariantCulture, $"p99 call {Percentile(calls, 0.99):F1} ms over {samples} (goal ≤ 50 ms)")),
            new ScenarioResult("snapshot time-to-ready", ready, bareReady, "SQL + archived",
                string.Create(CultureInfo.InvariantCulture, $"p99 ready {Percentile(ready, 0.99):F1} ms (goal ≤ 1000 ms)")),
        ];
    }

    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }
}
