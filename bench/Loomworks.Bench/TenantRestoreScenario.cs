using System.Diagnostics;
using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// Restore of one tenant beside five others, end to end, against (B) a full-cluster pgbackrest restore of the same
/// backup to the same target and (C) pg_dump -Fd -j2 + pg_restore -j2 of the tenant; and a neighbour's light load
/// during the restore against the same load without one. As the issue asks: a 1 GB tenant beside five of 150 MB;
/// LOOMWORKS_BENCH_RESTORE_MB sets the restored tenant's size (the others get a seventh of it) for a quicker run.
/// Ours ends when the job reports done (the tenant serves the restored data); the scratch folder is removed after.
/// Ours is timed alone, as B and C are; a second restore runs beside the neighbour's load for the neighbour measure.
/// </summary>
public sealed class TenantRestoreScenario : IScenario
{
    public string Name => "tenant-restore";
    public string Description => "restore one tenant vs full-cluster pgbackrest restore + dump/load; neighbour p99 during it";

    /// <summary>Three: the goal holds in the median of runs and within bounds in the worst, so one run says nothing.</summary>
    public int DefaultRuns => 3;

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        var megabytes = int.TryParse(Environment.GetEnvironmentVariable("LOOMWORKS_BENCH_RESTORE_MB"), CultureInfo.InvariantCulture,
            out var mb)
            ? mb : 1024;
        await using var cluster = await PitrCluster.StartAsync(55630);
        for (var i = 1; i <= 5; i++)
        {
            await cluster.CreateTenantAsync($"bench-n{i}", Math.Max(1, megabytes / 7));
        }
        await cluster.CreateTenantAsync("bench-big", megabytes);
        await cluster.Feature.Snapshots.BackupAsync("full", cancellationToken);
        await cluster.ExecuteAsync("bench-big", "UPDATE record SET body = body || 'x' WHERE id % 10 = 0");
        var snapshot = await cluster.Feature.Snapshots.CreateAsync("bench-big", null, SnapshotTypes.Manual, cancellationToken);
        snapshot = await cluster.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(60), cancellationToken);
        // Freshly loaded tables get their first vacuum (every page written again, 20-60 MB/s each) whenever autovacuum
        // comes to them: without this it did so inside the measures, several tenants at once. Done here, after the
        // snapshot, it changes nothing the restores bring back.
        foreach (var tenant in new[] { "bench-big", "bench-n1", "bench-n2", "bench-n3", "bench-n4", "bench-n5" })
        {
            await cluster.ExecuteAsync(tenant, "VACUUM (FREEZE, ANALYZE)");
        }

        var loadBefore = Load();
        var ours = new List<double>();
        var phases = new List<IReadOnlyList<(string Phase, double Milliseconds, double LowMilliseconds)>>();
        var fullCluster = new List<double>();
        var dumpLoad = new List<double>();
        var sum = new List<double>();
        NeighbourMeasure[] neighbourLoads =
        [
            // What a tenant's users do: record something, read back what was recorded last (100 rows by the key). Written
            // so that its plan is always the index: "id > (SELECT max(id) - 100 …)" left the planner guessing a third of
            // the table, and some runs scanned all 150 MB in parallel (a median of 9 ms alone instead of 1.3 ms).
            new("light", "insert + read of the 100 newest rows", "goal ratio ≤ 3",
                "INSERT INTO record (body) VALUES ('neighbour'); SELECT id, body FROM record ORDER BY id DESC LIMIT 100"),
            // A report over the whole table every cycle (about 150 MB, most of a core): page cache and CPU both contended.
            new("scan", "insert + count over the whole table", "no goal: a report's load, for comparison",
                "INSERT INTO record (body) VALUES ('neighbour'); SELECT count(*) FROM record WHERE id > 100"),
        ];
        // LOOMWORKS_BENCH_RESTORE_NEIGHBOURS: the neighbour loads measured ("light,scan" by default; "none" for ours, B and
        // C alone, when the machine is too busy for restores at low priority to end in reasonable time).
        var measured = (Environment.GetEnvironmentVariable("LOOMWORKS_BENCH_RESTORE_NEIGHBOURS") ?? "light,scan")
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var unavailable = new List<double>();
        var probeConnections = new List<int>();
        var withCleanup = new List<double>();
        // One restore of the tenant: time until the job reports done, and until its scratch folder is gone. The steps'
        // ends go to `steps` (on the scenario's clock) so that a neighbour's latencies can be told by step. The database
        // set aside is for the caller to drop, outside any measure: the product keeps it for hours, and DROP DATABASE
        // forces an immediate checkpoint of the gigabyte just loaded, which no neighbour sees right after a restore.
        async Task<(double Done, double Cleaned, string Aside, long Job)> RestoreOnceAsync(RestoreTimeline? steps = null,
            Action<int>? step = null)
        {
            var watch = Stopwatch.StartNew();
            var doneAt = 0.0;
            var job = await cluster.Feature.Restore.StartAsync(new RestoreRequest("bench-big", SnapshotId: snapshot.Id), cancellationToken);
            job = await cluster.Feature.Restore.RunAsync(job.Id, new SynchronousProgress(j =>
            {
                steps?.Reached(j.Step);
                step?.Invoke(j.Step);
                if (j.State == "done" && doneAt == 0)
                {
                    doneAt = watch.Elapsed.TotalMilliseconds;
                }
            }), cancellationToken);
            var cleaned = watch.Elapsed.TotalMilliseconds;
            steps?.Reached(RestoreTimeline.CleanedUp);
            if (job.State != "done")
            {
                throw new InvalidOperationException($"restore failed: {job.Error}");
            }
            return (doneAt > 0 ? doneAt : cleaned, cleaned, job.AsideDatabase!, job.Id);
        }
        // Drops the set-aside database and lets its checkpoint and the kernel's writeback finish before the next measure.
        async Task DropAsideAsync(string aside)
        {
            await cluster.ExecuteAsync("postgres", $"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(aside)} WITH (FORCE)");
            await BenchRunner.SettleAsync(cluster.DataSources.For("postgres"));
        }

        async Task SettledAndArchivedAsync()
        {
            await BenchRunner.SettleAsync(cluster.DataSources.For("postgres"));
            await WaitArchivedAsync(cluster, cancellationToken);
        }

        for (var run = 0; run < runs; run++)
        {
            // Timed as B and C are, with nothing else running; the tenant's own availability is probed throughout. Each of
            // the three starts settled: without it ours, measured first, ran while the kernel still wrote back the
            // gigabytes the setup had just written (89 s, against 78 s for the same restore run second).
            await SettledAndArchivedAsync();
            var nearSwap = false;
            using (var probe = new AvailabilityProbe(cluster.Server.Endpoint.ConnectionString("bench-big"),
                () => Volatile.Read(ref nearSwap)))
            {
                var (done, cleaned, aside, job) = await RestoreOnceAsync(step: step => Volatile.Write(ref nearSwap,
                    step >= RestoreSteps.Dumped));
                probeConnections.Add(probe.Connections);
                ours.Add(done);
                phases.Add(cluster.Phases.Of(job));
                withCleanup.Add(cleaned);
                unavailable.Add(await probe.StopAsync());
                await DropAsideAsync(aside);
            }
            await SettledAndArchivedAsync();
            var b = await FullClusterRestoreAsync(cluster, snapshot, cancellationToken);
            await BenchRunner.SettleAsync(cluster.DataSources.For("postgres"));
            var c = await DumpAndLoadAsync(cluster, cancellationToken);
            fullCluster.Add(b);
            dumpLoad.Add(c);
            sum.Add(b + c);
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"run {run + 1}: ours alone {ours[^1]:F0} ms " +
                $"({string.Join(", ", phases[^1].Select(p => $"{p.Phase} {p.Milliseconds:F0}"))}), " +
                $"B {b:F0} ms, C {c:F0} ms, ratio {ours[^1] / (b + c):F2}, unavailable {unavailable[^1]:F0} ms; load {Load()}"));
            // The neighbour measures: the same restore again while a neighbour's load runs, then that load alone as long;
            // once with the light load the goal names, once with the scan load (a whole-table count every cycle).
            foreach (var load in neighbourLoads.Where(l => measured.Contains(l.Name)))
            {
                // Both halves start settled, as ours, B and C do: C's gigabyte of WAL still being archived, or B's and
                // C's dirty pages still being written back, would land on whichever half came first.
                await SettledAndArchivedAsync();
                string beside;
                using (var during = new NeighbourLoad(cluster.DataSources.For("bench-n1"), load.Sql))
                {
                    var restore = await RestoreOnceAsync(load.Timeline);
                    load.RestoreBeside.Add(restore.Done);
                    load.During.Add(await during.StopAsync(load.Timeline));
                    beside = restore.Aside;
                }
                await DropAsideAsync(beside);
                await SettledAndArchivedAsync();
                using (var quiet = new NeighbourLoad(cluster.DataSources.For("bench-n1"), load.Sql))
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(load.RestoreBeside[^1], 30_000)), cancellationToken);
                    load.Quiet.Add(await quiet.StopAsync());
                }
            }
            // The next run's restore is timed alone: it starts once the neighbour's last statement is older than the time
            // a restore keeps its low priority after another tenant's work (it began its first 2 s at low priority).
            await Task.Delay(LoadPace.QuietAfter + TimeSpan.FromSeconds(1), cancellationToken);
        }
        PrintColumns(megabytes, ours, phases, fullCluster, dumpLoad, sum, loadBefore, Load());
        var results = new List<ScenarioResult>
        {
            new ScenarioResult($"tenant-restore {megabytes} MB", ours, sum, "B + C",
                string.Create(CultureInfo.InvariantCulture,
                    $"B full-cluster restore {BenchRunner.Median(fullCluster):F0} ms, C dump+load {BenchRunner.Median(dumpLoad):F0} ms; " +
                    $"goal ≤ 1.1 × (B + C); tenant unavailable max {unavailable.Max():F0} ms (goal ≤ 100 ms); " +
                    $"until the scratch folder is gone {BenchRunner.Median(withCleanup):F0} ms; " +
                    $"the availability probe opened {string.Join(", ", probeConnections)} connections")),
        };
        foreach (var load in neighbourLoads.Where(l => measured.Contains(l.Name)))
        {
            var ratios = load.During.P99s.Zip(load.Quiet.P99s, (during, quiet) => during / quiet).ToList();
            results.Add(new ScenarioResult($"neighbour p99 during restore ({load.Name})", load.During.P99s, load.Quiet.P99s,
                "same load, no restore",
                string.Create(CultureInfo.InvariantCulture,
                    $"each run's p99 during / quiet: {string.Join(", ", ratios.Select(r => r.ToString("F2",
                        CultureInfo.InvariantCulture)))}, " +
                    $"median {BenchRunner.Median(ratios):F2}; all runs pooled: p99 " +
                    $"{SnapshotCreateScenario.Percentile(load.During.Latencies, 0.99):F1} vs " +
                    $"{SnapshotCreateScenario.Percentile(load.Quiet.Latencies, 0.99):F1} ms; " +
                    $"{load.Description} started every 20 ms; {load.During.Latencies.Count} vs {load.Quiet.Latencies.Count} statements, " +
                    $"{BenchRunner.Median(load.During.Rates):F1} vs {BenchRunner.Median(load.Quiet.Rates):F1} per second; {load.Goal}; " +
                    $"p50 {BenchRunner.Median(load.During.Latencies):F1} vs {BenchRunner.Median(load.Quiet.Latencies):F1} ms; " +
                    $"the restore beside that load took {BenchRunner.Median(load.RestoreBeside):F0} ms; " +
                    $"p99 by restore step: {load.Timeline.Describe()}")));
        }
        return results;
    }

    /// <summary>The machine's load averages (1, 5, 15 min): the conditions a run was measured in.</summary>
    private static string Load() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    /// <summary>
    /// Waits until the live server has archived the WAL written so far. The setup (and the vacuums after the snapshot)
    /// write gigabytes of WAL that archive-push compresses and copies at normal priority: a restore measured while that
    /// backlog drains shares the CPUs with it, which neither B nor C, measured later, ever does. Prints the backlog found.
    /// </summary>
    private static async Task WaitArchivedAsync(PitrCluster cluster, CancellationToken cancellationToken)
    {
        var admin = cluster.DataSources.For("postgres");
        string segment;
        await using (var current = admin.CreateCommand("SELECT pg_walfile_name(pg_current_wal_lsn())"))
        {
            segment = (string)(await current.ExecuteScalarAsync(cancellationToken))!;
        }
        var watch = Stopwatch.StartNew();
        long? backlog = null;
        while (true)
        {
            await using var command = admin.CreateCommand("""
                SELECT (('x' || substr($1, 9, 8))::bit(32)::int * 256 + ('x' || substr($1, 17, 8))::bit(32)::int
                        - ('x' || substr(w, 9, 8))::bit(32)::int * 256 - ('x' || substr(w, 17, 8))::bit(32)::int)::bigint
                FROM pg_stat_archiver a, coalesce(a.last_archived_wal, $1) w
                """);
            command.Parameters.AddWithValue(segment);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var behind = reader.GetInt64(0);
            backlog ??= behind;
            // The segment being written is archived when it is full or switched; every one before it must be.
            if (behind <= 1 || watch.Elapsed > TimeSpan.FromMinutes(10))
            {
                break;
            }
            await Task.Delay(100, cancellationToken);
        }
        await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"archive backlog before the measure: {backlog} segments, archived in {watch.Elapsed.TotalSeconds:F1} s"));
    }

    /// <summary>
    /// Prints each column of the restore measure over the runs: median and spread (lowest to highest), the runs in order;
    /// ours alone, its phases as the restore logged them, B, C, B + C and the ratio.
    /// </summary>
    private static void PrintColumns(int megabytes, List<double> ours,
        List<IReadOnlyList<(string Phase, double Milliseconds, double LowMilliseconds)>> phases, List<double> b, List<double> c,
        List<double> sum, string loadBefore, string loadAfter)
    {
        var rows = new List<(string Name, List<double> Values)> { ("ours alone", ours) };
        var names = phases.SelectMany(p => p.Select(x => PhaseName(x.Phase))).Distinct().ToList();
        foreach (var name in names)
        {
            rows.Add(($"  {name}", [.. phases.Select(p => p.Where(x => PhaseName(x.Phase) == name).Sum(x => x.Milliseconds))]));
        }
        rows.Add(("  of which at low priority", [.. phases.Select(p => p.Sum(x => x.LowMilliseconds))]));
        rows.Add(("B full-cluster restore", b));
        rows.Add(("C dump + load", c));
        rows.Add(("B + C", sum));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"tenant-restore {megabytes} MB, {ours.Count} runs; load averages before {loadBefore}, after {loadAfter}"));
        Console.WriteLine("| column | median (ms) | spread (ms) | runs (ms) |");
        Console.WriteLine("|---|---:|---:|---|");
        foreach (var (name, values) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {BenchRunner.Median(values):F0} | {values.Min():F0}–{values.Max():F0} | " +
                $"{string.Join(", ", values.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} |"));
        }
        var ratios = ours.Zip(sum, (o, s) => o / s).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| ratio ours / (B + C) | {BenchRunner.Median(ratios):F2} | {ratios.Min():F2}–{ratios.Max():F2} | " +
            $"{string.Join(", ", ratios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))} " +
            $"(goal ≤ 1.1 median, ≤ 1.3 worst) |"));
        Console.WriteLine();
    }

    /// <summary>A phase under one name whether or not the copy had to be promoted.</summary>
    private static string PhaseName(string phase) =>
        phase.StartsWith("replay to target", StringComparison.Ordinal) ? "replay to target" : phase;

    /// <summary>(B) the same backup and target restored whole into a scratch folder, started and replayed to the pause.</summary>
    private static async Task<double> FullClusterRestoreAsync(PitrCluster cluster, Snapshot snapshot, CancellationToken cancellationToken)
    {
        var scratch = System.IO.Path.Combine(cluster.Path, "bench-full");
        var pgData = System.IO.Path.Combine(scratch, "pgdata");
        var run = System.IO.Path.Combine(scratch, "run");
        foreach (var dir in new[] { scratch, pgData, run, System.IO.Path.Combine(scratch, "spool"), System.IO.Path.Combine(scratch, "lock"),
            System.IO.Path.Combine(scratch, "log") })
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_000_000);
            CommandRunner.GiveToServerUser(dir);
        }
        var binaries = cluster.Server.Embedded!.Binaries;
        var set = (await cluster.Feature.Snapshots.SyncBackupSetsAsync(cancellationToken))[^1];
        var watch = Stopwatch.StartNew();
        var restored = await cluster.Feature.BackRest.RestoreAsync(pgData, scratch, set.Label, "name", snapshot.RestorePoint, null,
            prefetchWal: false, lowPriority: false, cancellationToken);
        Check(restored);
        Check(await CommandRunner.RunAsync(binaries["pg_ctl"],
            ["start", "-D", pgData, "-l", System.IO.Path.Combine(scratch, "log", "pg.log"), "-W", "-s", "-o",
             $"-p 55639 -k {run} -c listen_addresses='' -c archive_mode=off"], CommandRunner.ServerUser,
                 cancellationToken: cancellationToken));
        await using (var dataSource = NpgsqlDataSource.Create(new PostgresEndpoint(run, 55639, "postgres",
            null).ConnectionString("postgres") + ";Pooling=false"))
        {
            while (true)
            {
                try
                {
                    await using var command = dataSource.CreateCommand("SELECT pg_get_wal_replay_pause_state()");
                    if ((string)(await command.ExecuteScalarAsync(cancellationToken))! == "paused")
                    {
                        break;
                    }
                }
                catch (NpgsqlException)
                {
                    // still starting
                }
                await Task.Delay(100, cancellationToken);
            }
        }
        var elapsed = watch.Elapsed.TotalMilliseconds;
        await CommandRunner.RunAsync(binaries["pg_ctl"], ["stop", "-D", pgData, "-m", "immediate", "-w"], CommandRunner.ServerUser,
            cancellationToken: cancellationToken);
        Directory.Delete(scratch, recursive: true);
        return elapsed;
    }

    /// <summary>(C) a plain dump of the live tenant and a load into a new database.</summary>
    private static async Task<double> DumpAndLoadAsync(PitrCluster cluster, CancellationToken cancellationToken)
    {
        var endpoint = cluster.Server.Endpoint;
        var binaries = cluster.Server.Embedded!.Binaries;
        var dump = System.IO.Path.Combine(cluster.Path, "bench-dump");
        Directory.CreateDirectory(dump);
        CommandRunner.GiveToServerUser(dump);
        var watch = Stopwatch.StartNew();
        Check(await CommandRunner.RunAsync(binaries["pg_dump"],
            ["-h", endpoint.Host, "-p", endpoint.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-Fd", "-j", "2",
             "-f", System.IO.Path.Combine(dump, "db"), "bench-big"], CommandRunner.ServerUser, cancellationToken: cancellationToken));
        await cluster.ExecuteAsync("postgres", "CREATE DATABASE \"bench-copy\"");
        Check(await CommandRunner.RunAsync(binaries["pg_restore"],
            ["-h", endpoint.Host, "-p", endpoint.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-d", "bench-copy",
             "-j", "2", System.IO.Path.Combine(dump, "db")], CommandRunner.ServerUser, cancellationToken: cancellationToken));
        var elapsed = watch.Elapsed.TotalMilliseconds;
        await cluster.ExecuteAsync("postgres", "DROP DATABASE \"bench-copy\" WITH (FORCE)");
        Directory.Delete(dump, recursive: true);
        return elapsed;
    }

    private static void Check(CommandResult result)
    {
        if (!result.Succeeded)
        {
            throw new InvalidOperationException(result.Diagnostic);
        }
    }

    /// <summary>Reports on the calling thread: Progress&lt;T&gt; posts to the thread pool and would time the report late.</summary>
    private sealed class SynchronousProgress(Action<RestoreJob> report) : IProgress<RestoreJob>
    {
        public void Report(RestoreJob value) => report(value);
    }

    /// <summary>A neighbour's load, its latencies beside a restore and alone, and how long the restores beside it took.</summary>
    private sealed record NeighbourMeasure(string Name, string Description, string Goal, string Sql)
    {
        public LoadSamples During { get; } = new();
        public LoadSamples Quiet { get; } = new();
        public List<double> RestoreBeside { get; } = [];
        public RestoreTimeline Timeline { get; } = new();
    }

    /// <summary>
    /// When each restore step ended, and the neighbour's latencies by the step they started in: which part of a restore
    /// the neighbour feels. Times are on one clock shared by the restore's progress and the load.
    /// </summary>
    private sealed class RestoreTimeline
    {
        /// <summary>After done: the scratch folder removed, the run returned.</summary>
        public const int CleanedUp = RestoreSteps.Done + 1;

        private static readonly string[] StepNames =
            ["pgbackrest restore", "replay", "dump and load", "grants and flush", "swap", "finish", "cleanup"];

        private readonly List<(TimeSpan At, int Step)> _marks = [];
        private readonly List<double>[] _latencies = [.. StepNames.Select(_ => new List<double>())];

        public static Stopwatch Clock { get; } = Stopwatch.StartNew();

        public void Reached(int step)
        {
            if (_marks.Count == 0 || _marks[^1].Step != step)
            {
                _marks.Add((Clock.Elapsed, step));
            }
        }

        /// <summary>Files a latency under the step running when it started; one before this restore's first mark or after its last is
        /// dropped.</summary>
        public void Add(TimeSpan startedAt, double latency)
        {
            var end = _marks.FindIndex(m => m.At >= startedAt);
            if (end >= 0 && _marks[end].Step >= RestoreSteps.FilesRestored)
            {
                _latencies[_marks[end].Step - 1].Add(latency);
            }
        }

        public string Describe() => string.Join(", ", StepNames.Select((name, i) => _latencies[i].Count == 0
            ? $"{name} -"
            : string.Create(CultureInfo.InvariantCulture,
                $"{name} p50 {BenchRunner.Median(_latencies[i]):F1} p99 {SnapshotCreateScenario.Percentile(_latencies[i], 0.99):F1} ms " +
                $"({_latencies[i].Count})")));
    }

    /// <summary>The latencies of a load's runs and the rate (statements per second) each run kept up.</summary>
    private sealed class LoadSamples
    {
        public List<double> Latencies { get; } = [];
        public List<double> Rates { get; } = [];

        /// <summary>Each run's p99: the goal holds in the median of runs, as every other column's.</summary>
        public List<double> P99s { get; } = [];

        public void Add((IReadOnlyList<double> Latencies, double PerSecond) run)
        {
            Latencies.AddRange(run.Latencies);
            Rates.Add(run.PerSecond);
            P99s.Add(SnapshotCreateScenario.Percentile(run.Latencies, 0.99));
        }
    }

    /// <summary>
    /// A load on a neighbour: its statements started every 20 ms (at once when the previous one ran late), as users who
    /// do not wait for each other would; each round trip's latency recorded, and the rate the load kept up.
    /// </summary>
    private sealed class NeighbourLoad : IDisposable
    {
        private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);
        private readonly CancellationTokenSource _stop = new();
        private readonly List<(TimeSpan StartedAt, double Latency)> _samples = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly Task _task;

        public NeighbourLoad(PooledDatabase dataSource, string sql) => _task = Task.Run(async () =>
        {
            var next = TimeSpan.Zero;
            while (!_stop.IsCancellationRequested)
            {
                var started = RestoreTimeline.Clock.Elapsed;
                await using (var command = dataSource.CreateCommand(sql))
                {
                    await command.ExecuteNonQueryAsync();
                }
                _samples.Add((started, (RestoreTimeline.Clock.Elapsed - started).TotalMilliseconds));
                next += Interval;
                var wait = next - _clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }
            }
        });

        /// <summary>Ends the load; its latencies, the rate it kept, and each latency filed in <paramref name="timeline"/>.</summary>
        public async Task<(IReadOnlyList<double> Latencies, double PerSecond)> StopAsync(RestoreTimeline? timeline = null)
        {
            await _stop.CancelAsync();
            await _task;
            foreach (var (startedAt, latency) in _samples)
            {
                timeline?.Add(startedAt, latency);
            }
            return ([.. _samples.Select(s => s.Latency)], _samples.Count / _clock.Elapsed.TotalSeconds);
        }

        public void Dispose() => _stop.Dispose();
    }

    /// <summary>
    /// Queries the restored tenant every 5 ms and reports the longest stretch it could not be reached. Until the restore
    /// nears its swap (<paramref name="fresh"/> false) it queries through one kept connection, opened again at once if
    /// lost; from then on every query opens a connection of its own, as a client arriving at the swap would. A fresh
    /// connection every 5 ms for the whole restore (a backend forked and a SCRAM exchange on both sides, 100-200 a
    /// second) took most of a CPU, which the restore measured alone then shared and B and C never did.
    /// </summary>
    private sealed class AvailabilityProbe : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task<double> _task;

        public int Connections { get; private set; }

        public AvailabilityProbe(string connectionString, Func<bool> fresh) => _task = Task.Run(async () =>
        {
            var longest = 0.0;
            Stopwatch? down = null;
            NpgsqlConnection? kept = null;
            while (!_stop.IsCancellationRequested)
            {
                var isFresh = fresh();
                try
                {
                    if (isFresh || kept is null)
                    {
                        if (kept is not null)
                        {
                            await kept.DisposeAsync();
                            kept = null;
                        }
                        var connection = new NpgsqlConnection(connectionString + ";Pooling=false;Timeout=2");
                        Connections++;
                        if (!isFresh)
                        {
                            kept = connection;
                        }
                        await connection.OpenAsync();
                        await QueryAsync(connection);
                        if (isFresh)
                        {
                            await connection.DisposeAsync();
                        }
                    }
                    else
                    {
                        await QueryAsync(kept);
                    }
                    if (down is not null)
                    {
                        longest = Math.Max(longest, down.Elapsed.TotalMilliseconds);
                        down = null;
                    }
                }
                catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
                {
                    down ??= Stopwatch.StartNew();
                    if (kept is not null)
                    {
                        await kept.DisposeAsync();
                        kept = null;
                    }
                }
                await Task.Delay(5);
            }
            if (kept is not null)
            {
                await kept.DisposeAsync();
            }
            return longest;
        });

        private static async Task QueryAsync(NpgsqlConnection connection)
        {
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
        }

        public async Task<double> StopAsync()
        {
            await _stop.CancelAsync();
            return await _task;
        }

        public void Dispose() => _stop.Dispose();
    }
}
