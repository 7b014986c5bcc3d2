using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Npgsql;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// Priority by need: a restore's processes run at normal priority on every CPU while no other tenant works, fall back
/// to nice 19 off the first CPU while one does and come back when it stops, observed in /proc as the kernel applies it;
/// and the scratch copy replays with the settings sized from the free memory. A cluster of its own, so that no other
/// test's tenants work beside these restores.
/// </summary>
public sealed class RestorePriorityTests(PitrFixture pitr) : IClassFixture<PitrFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>What the kernel says of a process: its nice value, its scheduling group's and the CPUs it may use.</summary>
    private sealed record Priority(int Nice, string Group, IReadOnlyList<int> Cpus)
    {
        public static Priority? Of(int pid)
        {
            try
            {
                var cpus = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
                var group = File.Exists($"/proc/{pid}/autogroup") ? File.ReadAllText($"/proc/{pid}/autogroup").Trim() : "";
                return new Priority(CommandRunner.StatField(pid, StatNice), group,
                    LowPriorityCpus.Parse(cpus["Cpus_allowed_list:".Length..]));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                return null; // gone
            }
        }

        /// <summary>Held back for the tenants: nice 19, its group too, off the first CPU (where there is more than one).</summary>
        public bool IsLow => Nice == 19 && (Group.Length == 0 || Group.EndsWith("nice 19", StringComparison.Ordinal))
            && Cpus.SequenceEqual(LowPriorityCpus.Cpus.Count == 0 ? Cpus : LowPriorityCpus.Cpus);

        /// <summary>Running as any process would: nice 0, its group too, on every CPU this process may use.</summary>
        public bool IsNormal => Nice == 0 && (Group.Length == 0 || Group.EndsWith("nice 0", StringComparison.Ordinal))
            && Cpus.SequenceEqual(LowPriorityCpus.All);
    }

    /// <summary>The nice field of /proc/PID/stat, counted from the state as 0.</summary>
    private const int StatNice = 16;

    /// <summary>The scratch copy's postmaster and its processes (the paused startup process among them).</summary>
    private static List<int> ScratchPostgres(TenantRestore restore)
    {
        var pidFile = new[] { restore.MemoryRoot!, restore.ScratchRoot }.Where(Directory.Exists).SelectMany(Directory.GetDirectories)
            .Select(dir => Path.Combine(dir, "pgdata", "postmaster.pid")).Single(File.Exists);
        var postmaster = int.Parse(File.ReadLines(pidFile).First(), CultureInfo.InvariantCulture);
        var children = Directory.EnumerateDirectories("/proc").Select(Path.GetFileName)
            .Select(name => int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && ParentOf(pid) == postmaster);
        return [postmaster, .. children];
    }

    private static int? ParentOf(int pid)
    {
        try
        {
            return CommandRunner.StatField(pid, CommandRunner.StatParent);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Polls until every process of the scratch copy shows <paramref name="wanted"/>; the last look when it never did.</summary>
    private static string WaitFor(TenantRestore restore, Func<Priority, bool> wanted, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var seen = ScratchPostgres(restore).Select(pid => (Pid: pid, Priority: Priority.Of(pid)))
                .Where(p => p.Priority is not null).ToList();
            if (seen.Count > 0 && seen.All(p => wanted(p.Priority!)))
            {
                return "";
            }
            if (DateTime.UtcNow > deadline)
            {
                return string.Join("; ", seen.Select(p => $"{p.Pid}: {p.Priority}"));
            }
            Thread.Sleep(50);
        }
    }

    [Fact]
    public async Task A_working_tenant_makes_the_restore_fall_back_and_it_comes_back_when_the_tenant_stops()
    {
        if (!CommandRunner.IsRoot)
        {
            Assert.Skip("raising a lowered process back to nice 0 takes root, as CI runs");
        }
        // The server's scheduling group starts unlowered, so a restore that lowered it would show.
        var ownGroup = File.ReadAllText("/proc/self/autogroup");
        if (ownGroup.Length > 0)
        {
            File.WriteAllText("/proc/self/autogroup", "0");
            ownGroup = File.ReadAllText("/proc/self/autogroup");
        }
        // Asked directly, the lowering leaves a process of our own session alone.
        Assert.True(CommandRunner.LowerSessionGroup(Environment.ProcessId));
        Assert.Equal(ownGroup, File.ReadAllText("/proc/self/autogroup"));
        await pitr.CreateTenantAsync("rp-main");
        await pitr.ExecuteAsync("rp-main", "CREATE TABLE partner (id int PRIMARY KEY, name text); INSERT INTO partner VALUES (1, 'one')");
        await pitr.CreateTenantAsync("rp-busy");
        await pitr.ExecuteAsync("rp-busy", "CREATE TABLE hit (id bigserial PRIMARY KEY)");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rp-main", null, SnapshotTypes.Manual, None);
        var restore = pitr.Feature.Restore;
        string quiet = "not reached", busy = "not reached", quietAgain = "not reached";
        var quietAfter = LoadPace.QuietAfter + TimeSpan.FromSeconds(10);
        restore.AfterStep = step =>
        {
            if (step != RestoreSteps.TargetReached)
            {
                return;
            }
            // Replayed and paused, the copy waits to be dumped: its processes are watched while a neighbour starts and stops.
            quiet = WaitFor(restore, p => p.IsNormal, quietAfter);
            using var stop = new CancellationTokenSource();
            var neighbour = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    await pitr.ExecuteAsync("rp-busy", "INSERT INTO hit DEFAULT VALUES");
                    await Task.Delay(5, CancellationToken.None);
                }
            }, CancellationToken.None);
            busy = WaitFor(restore, p => p.IsLow, TimeSpan.FromSeconds(10));
            stop.Cancel();
            neighbour.GetAwaiter().GetResult();
            quietAgain = WaitFor(restore, p => p.IsNormal, quietAfter);
        };
        try
        {
            var job = await pitr.Feature.Restore.RunAsync((await restore.StartAsync(
                new RestoreRequest("rp-main", SnapshotId: snapshot.Id), None)).Id, null, None);
            Assert.True(job.State == "done", job.Error);
        }
        finally
        {
            restore.AfterStep = null;
        }

        Assert.True(quiet.Length == 0, $"no tenant worked, yet the copy was not at normal priority on every CPU: {quiet}");
        Assert.True(busy.Length == 0, $"a tenant worked, yet the copy did not fall back to nice 19 off the first CPU: {busy}");
        Assert.True(quietAgain.Length == 0, $"the tenant stopped, yet the copy did not come back to normal priority: {quietAgain}");
        Assert.Equal(ownGroup, File.ReadAllText("/proc/self/autogroup"));
        Assert.True(pitr.ScratchIsClean());
    }

    [Fact]
    public async Task The_scratch_copy_replays_with_the_recovery_settings_sized_from_the_free_memory()
    {
        await pitr.CreateTenantAsync("rp-settings");
        await pitr.ExecuteAsync("rp-settings", "CREATE TABLE partner (id int PRIMARY KEY); INSERT INTO partner VALUES (1)");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rp-settings", null, SnapshotTypes.Manual, None);
        var restore = pitr.Feature.Restore;
        var memoryAvailable = restore.MemoryAvailable;
        restore.MemoryAvailable = () => 6L << 30;
        var settings = new Dictionary<string, string>();
        restore.AfterStep = step =>
        {
            if (step != RestoreSteps.TargetReached)
            {
                return;
            }
            var pgData = new[] { restore.MemoryRoot!, restore.ScratchRoot }.Where(Directory.Exists).SelectMany(Directory.GetDirectories)
                .Select(dir => Path.Combine(dir, "pgdata")).Single(dir => File.Exists(Path.Combine(dir, "postmaster.pid")));
            var port = int.Parse(File.ReadLines(Path.Combine(pgData, "postmaster.pid")).ElementAt(3), CultureInfo.InvariantCulture);
            var endpoint = new PostgresEndpoint(Path.Combine(Path.GetDirectoryName(pgData)!, "run"), port, EmbeddedCluster.Superuser, null);
            using var connection = new NpgsqlConnection(endpoint.ConnectionString("postgres") + ";Pooling=false");
            connection.Open();
            using var command = new NpgsqlCommand("""
                SELECT name, CASE unit WHEN '8kB' THEN (setting::bigint * 8)::text WHEN 'kB' THEN setting WHEN 'MB'
                    THEN (setting::bigint * 1024)::text WHEN 'B' THEN (setting::bigint / 1024)::text ELSE setting END
                FROM pg_settings WHERE name IN ('shared_buffers', 'maintenance_work_mem', 'wal_decode_buffer_size',
                    'recovery_prefetch', 'fsync', 'full_page_writes', 'hot_standby', 'archive_mode', 'max_wal_size')
                """, connection);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                settings[reader.GetString(0)] = reader.GetString(1);
            }
        };
        try
        {
            var job = await pitr.Feature.Restore.RunAsync((await restore.StartAsync(
                new RestoreRequest("rp-settings", SnapshotId: snapshot.Id), None)).Id, null, None);
            Assert.True(job.State == "done", job.Error);
        }
        finally
        {
            restore.AfterStep = null;
            restore.MemoryAvailable = memoryAvailable;
        }

        var sized = RecoveryMemory.For(6L << 30);
        Assert.Equal((sized.SharedBuffersMb * 1024).ToString(CultureInfo.InvariantCulture), settings["shared_buffers"]);
        Assert.Equal((sized.MaintenanceWorkMemMb * 1024).ToString(CultureInfo.InvariantCulture), settings["maintenance_work_mem"]);
        Assert.Equal(sized.WalDecodeBufferKb.ToString(CultureInfo.InvariantCulture), settings["wal_decode_buffer_size"]);
        Assert.Equal("try", settings["recovery_prefetch"]);
        Assert.Equal("off", settings["fsync"]);
        Assert.Equal("off", settings["full_page_writes"]);
        Assert.Equal("on", settings["hot_standby"]);
        Assert.Equal("off", settings["archive_mode"]);
        Assert.True(pitr.ScratchIsClean());
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(100L << 20)]
    public void Little_unknown_or_nonsensical_free_memory_still_gives_PostgreSQLs_usual_figures(long available)
    {
        var sized = RecoveryMemory.For(available);
        Assert.Equal(new RecoveryMemory(128, 64, 512), sized);
    }

    [Theory]
    [InlineData(long.MaxValue)]
    [InlineData(1L << 50)]
    public void Huge_free_memory_gives_a_throwaway_copy_no_more_than_it_can_use(long available)
    {
        Assert.Equal(new RecoveryMemory(8192, 1024, 64 * 1024), RecoveryMemory.For(available));
    }

    [Fact]
    public void Free_memory_in_between_is_shared_out_by_quarters_and_sixteenths()
    {
        var sized = RecoveryMemory.For(16L << 30);
        Assert.Equal(new RecoveryMemory(4096, 1024, 16 * 1024), sized);
        Assert.Contains("-c shared_buffers=4096MB", TenantRestore.ScratchSettings("/run", 5555, 16L << 30));
        Assert.Contains("-c fsync=off", TenantRestore.ScratchSettings("/run", 5555, 16L << 30));
    }
}
