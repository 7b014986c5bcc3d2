using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Snapshots;

/// <summary>What a restore asks for: one of a snapshot, a time or an LSN, and optionally a new tenant to restore into.</summary>
public sealed record RestoreRequest(string Subdomain, long? SnapshotId = null, string? Time = null, string? Lsn = null,
    string? AsSubdomain = null);

/// <summary>Thrown by the test hook to stop a restore dead after a step, as a kill -9 would.</summary>
public sealed class SimulatedCrashException(int step) : Exception($"simulated crash after step {step}");

/// <summary>
/// Restores one tenant to a snapshot, a time or an LSN without stopping the others: a selective pgBackRest restore
/// into a scratch directory (own port, spool and lock, archiving off, low priority), replay paused at the target,
/// pg_dump of the tenant, pg_restore into a new database, then a swap that keeps the old database aside for undo.
/// Every step is persisted; <see cref="RecoverAsync"/> resumes or rolls back what a dead process left.
/// </summary>
public sealed partial class TenantRestore(
    SnapshotService snapshots,
    RestoreJobStore jobs,
    TenantStore tenants,
    PooledDatabase admin,
    PostgresEndpoint liveEndpoint,
    Lazy<PostgresBinaries> binaries,
    string dataDir,
    string scratchRoot,
    string? memoryRoot,
    int keepPreRestoreHours,
    ILogger logger,
    Func<string, Task>? evictDatabase = null)
{
    /// <summary>Set by the tests: called after each persisted step; throwing from it simulates a crash there.</summary>
    internal Action<int>? AfterStep { get; set; }

    /// <summary>The load's rate while other tenants work (loomworks_restore_paced_mb_per_s); 0: never paced.</summary>
    public long PacedBytesPerSecond { get; init; } = 20L << 20;

    /// <summary>How long the last load waited to keep its pace beside other tenants' work (see <see cref="LoadPace"/>).</summary>
    internal TimeSpan LastLoadPacedFor { get; private set; }

    /// <summary>Free bytes where scratch copies go; replaceable by the tests to simulate a full disk.</summary>
    internal Func<string, long> FreeBytes { get; set; } = path => new DriveInfo(path).AvailableFreeSpace;

    /// <summary>The tenant schema whose missing migrations a restored database gets before the swap; none: left as restored.</summary>
    public ITenantDatabaseSetup? Schema { get; set; }

    /// <summary>Bytes of memory available (/proc/meminfo's MemAvailable); replaceable by the tests.</summary>
    internal Func<long> MemoryAvailable { get; set; } = ReadMemoryAvailable;

    /// <summary>Where scratch copies go on disk: loomworks_restore_scratch_dir, by default data_dir/restore.</summary>
    public string ScratchRoot => scratchRoot;

    /// <summary>Where scratch copies go when they fit in memory (loomworks_restore_in_memory); null when that is off.</summary>
    public string? MemoryRoot => memoryRoot;

    /// <summary>
    /// The in-memory scratch folder of the Loomworks whose data_dir is <paramref name="dataDir"/>: named after it, so
    /// two instances on one machine never take (or clean up) each other's copies. Null without a /dev/shm.
    /// </summary>
    public static string? MemoryRootFor(string dataDir) => Directory.Exists("/dev/shm")
        ? "/dev/shm/loomworks-restore-" + Convert.ToHexStringLower(
            System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataDir))))[..12]
        : null;

    public RestoreJobStore Jobs => jobs;

    [GeneratedRegex("^[a-z][a-z0-9-]{0,62}$")]
    private static partial Regex SubdomainPattern();

    [GeneratedRegex("^job-[0-9]{1,19}$")]
    private static partial Regex ScratchFolderName();

    /// <summary>Checks the request, picks the backup set and records the job; every refusal changes nothing.</summary>
    public async Task<RestoreJob> StartAsync(RestoreRequest request, CancellationToken cancellationToken)
    {
        var tenant = await snapshots.RequireTenantAsync(request.Subdomain, cancellationToken);
        if (tenant.State == TenantStates.Restoring)
        {
            throw new SnapshotException(SnapshotErrorKind.Conflict, $"tenant '{tenant.Subdomain}' is being restored");
        }
        var given = (request.SnapshotId is null ? 0 : 1) + (request.Time is null ? 0 : 1) + (request.Lsn is null ? 0 : 1);
        if (given != 1)
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid, "give exactly one of a snapshot, a time or an LSN to restore to");
        }
        var targetDatabase = tenant.DatabaseName;
        if (request.AsSubdomain is { } asSubdomain)
        {
            if (!SubdomainPattern().IsMatch(asSubdomain))
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid,
                    "the new tenant's subdomain must be 1 to 63 lower-case letters, digits or hyphens, starting with a letter");
            }
            if (await tenants.FindBySubdomainAsync(asSubdomain, cancellationToken) is not null)
            {
                throw new SnapshotException(SnapshotErrorKind.Conflict, $"a tenant '{asSubdomain}' already exists");
            }
            targetDatabase = asSubdomain;
            if (await DatabaseExistsAsync(targetDatabase, cancellationToken))
            {
                throw new SnapshotException(SnapshotErrorKind.Conflict, $"a database '{targetDatabase}' already exists");
            }
        }
        if (!snapshots.BackRest.IsConfigured)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable, PgBackRest.IsInstalled
                ? "pgBackRest is not set up for this server; start the server once to set it up"
                : "pgBackRest is not installed; point-in-time restore needs it: apt-get install pgbackrest");
        }

        string targetType, target;
        NpgsqlLogSequenceNumber? targetLsn = null;
        DateTimeOffset? targetTime = null;
        if (request.SnapshotId is { } snapshotId)
        {
            var snapshot = await snapshots.RequireSnapshotAsync(tenant, snapshotId, cancellationToken);
            if (snapshot.State == "pending")
            {
                snapshot = await snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(10), cancellationToken);
            }
            if (snapshot.State != "ready")
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid,
                    $"snapshot {snapshot.Id} is {snapshot.State}; only a ready snapshot can be restored");
            }
            (targetType, target, targetLsn) = ("name", snapshot.RestorePoint, NpgsqlLogSequenceNumber.Parse(snapshot.WalPosition));
        }
        else if (request.Lsn is { } lsnText)
        {
            if (!NpgsqlLogSequenceNumber.TryParse(lsnText, out var lsn))
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid, $"'{Shorten(lsnText)}' is not an LSN (such as 0/16B3748)");
            }
            if (lsn > await CurrentLsnAsync(cancellationToken))
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid, $"LSN {lsn} is in the future: the server has not written it yet");
            }
            (targetType, target, targetLsn) = ("lsn", lsn.ToString(), lsn);
        }
        else
        {
            if (!DateTimeOffset.TryParse(request.Time, CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var time))
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid,
                    $"'{Shorten(request.Time!)}' is not a time (use ISO 8601, such as 2025-01-31T14:05:00Z)");
            }
            if (time > DateTimeOffset.UtcNow)
            {
                throw new SnapshotException(SnapshotErrorKind.Invalid, $"{time:O} is in the future");
            }
            targetTime = time;
            (targetType, target) = ("time", time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");
        }

        IReadOnlyList<BackupSet> sets;
        try
        {
            sets = await snapshots.SyncBackupSetsAsync(cancellationToken);
        }
        catch (PgBackRestException e)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable, e.Message);
        }
        if (sets.Count == 0)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable, "there is no backup yet: run 'loomworks backup run --type full'");
        }
        // The newest backup that ends before the target: replay must start before it, and a later one cannot go back.
        var set = targetLsn is { } l
            ? sets.LastOrDefault(s => s.StopLsn <= l)
            : sets.LastOrDefault(s => s.Stopped < targetTime!.Value);
        if (set is null)
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"the target is before the oldest backup ({sets[0].Label}, finished {sets[0].Stopped:O} at LSN {sets[0].StopLsn}); " +
                "nothing older is kept");
        }
        var scratchRoot = await ChooseScratchRootAsync(tenant.DatabaseName, set, cancellationToken);
        if (targetType != "name")
        {
            // A time target stops at the first commit after it, and every target needs its WAL archived: commit and
            // switch now so the archive reaches past the target.
            await ArchiveUpToNowAsync(cancellationToken);
        }
        try
        {
            var job = await jobs.CreateAsync(tenant.Id, tenant.DatabaseName, targetDatabase, request.AsSubdomain, targetType,
                target, request.SnapshotId, set.Label, cancellationToken);
            var scratch = Path.Combine(scratchRoot, "job-" + job.Id.ToString(CultureInfo.InvariantCulture));
            await jobs.SetScratchAsync(job.Id, scratch, cancellationToken);
            return job with { ScratchDir = scratch };
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new SnapshotException(SnapshotErrorKind.Conflict,
                $"a restore of tenant '{tenant.Subdomain}' is already running; wait for it to finish");
        }
    }

    /// <summary>Runs (or resumes) a job to its end; a failure before the swap rolls back and leaves the tenant as it was.</summary>
    public async Task<RestoreJob> RunAsync(long jobId, IProgress<RestoreJob>? progress, CancellationToken cancellationToken)
    {
        var lockConnection = await jobs.TryLockAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.Conflict, $"job {jobId} is being worked on by another process");
        try
        {
            var job = (await jobs.GetAsync(jobId, cancellationToken))!;
            try
            {
                job = await RunStepsAsync(job, progress, cancellationToken);
            }
            catch (Exception e) when (e is not SimulatedCrashException)
            {
                logger.LogError(e, "Restore job {Job} failed", jobId);
                job = (await jobs.GetAsync(jobId, CancellationToken.None))!;
                await RollBackAsync(job, Describe(e, job.ScratchDir), CancellationToken.None);
                job = (await jobs.GetAsync(jobId, CancellationToken.None))!;
            }
            progress?.Report(job);
            return job;
        }
        finally
        {
            await RestoreJobStore.UnlockAsync(lockConnection, jobId);
        }
    }

    /// <summary>
    /// At start: every job left running or undoing by a dead process is resumed (the copy was loaded: finish the
    /// swap) or rolled back (before that); scratch PostgreSQL processes and folders are always removed.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        var recovered = 0;
        foreach (var job in await jobs.UnfinishedAsync(cancellationToken))
        {
            var lockConnection = await jobs.TryLockAsync(job.Id, cancellationToken);
            if (lockConnection is null)
            {
                continue; // a live process is working on it
            }
            try
            {
                recovered++;
                logger.LogWarning("Recovering restore job {Job}, interrupted after {Step}", job.Id, job.StepName);
                await CleanScratchAsync(job.ScratchDir, cancellationToken);
                if (job.State == "undoing")
                {
                    await UndoStepsAsync(job, cancellationToken);
                }
                else if (job.Step >= RestoreSteps.Loaded)
                {
                    await SwapAsync(job, cancellationToken);
                    await jobs.SetStepAsync(job.Id, RestoreSteps.Swapped, cancellationToken);
                    await FinishAsync(job, cancellationToken);
                }
                else
                {
                    await RollBackAsync(job, $"interrupted after step '{job.StepName}'; rolled back, the tenant is unchanged",
                        cancellationToken);
                }
            }
            finally
            {
                await RestoreJobStore.UnlockAsync(lockConnection, job.Id);
            }
        }
        // Folders no unfinished job owns: left by a crash before the job recorded them. Only our own job-<id>
        // folders: the scratch root is configurable and may be shared with other programs.
        var owned = (await jobs.UnfinishedAsync(cancellationToken)).Select(j => j.ScratchDir).ToHashSet();
        foreach (var root in new[] { ScratchRoot, MemoryRoot }.OfType<string>().Where(Directory.Exists))
        {
            foreach (var dir in Directory.GetDirectories(root)
                         .Where(d => ScratchFolderName().IsMatch(Path.GetFileName(d)) && !owned.Contains(d)))
            {
                await CleanScratchAsync(dir, cancellationToken);
            }
        }
        return recovered;
    }

    /// <summary>Swaps the database a finished restore replaced back in; the restored copy is dropped.</summary>
    public async Task<RestoreJob> UndoAsync(long jobId, CancellationToken cancellationToken)
    {
        var job = await jobs.GetAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.NotFound, $"there is no restore job {jobId}");
        if (job.AsSubdomain is not null)
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"job {jobId} restored into a new tenant '{job.AsSubdomain}'; there is nothing to swap back (delete that tenant instead)");
        }
        if (job.State is not ("done" or "undoing"))
        {
            throw new SnapshotException(job.State == "running" ? SnapshotErrorKind.Conflict : SnapshotErrorKind.Invalid,
                $"job {jobId} is {job.State}; only a finished restore can be undone");
        }
        if (job.AsideDroppedAt is not null || !await DatabaseExistsAsync(job.AsideDatabase!, cancellationToken))
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"the database job {jobId} replaced was kept for {keepPreRestoreHours} h and is gone; restore a snapshot instead");
        }
        var lockConnection = await jobs.TryLockAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.Conflict, $"job {jobId} is being worked on by another process");
        try
        {
            try
            {
                await jobs.SetStateAsync(jobId, "undoing", cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw new SnapshotException(SnapshotErrorKind.Conflict, "another restore of this tenant is running; wait for it to finish");
            }
            await UndoStepsAsync(job, cancellationToken);
            return (await jobs.GetAsync(jobId, cancellationToken))!;
        }
        finally
        {
            await RestoreJobStore.UnlockAsync(lockConnection, jobId);
        }
    }

    /// <summary>Drops databases kept aside longer than loomworks_keep_pre_restore_hours.</summary>
    public async Task<int> PruneAsideAsync(CancellationToken cancellationToken)
    {
        var dropped = 0;
        foreach (var job in await jobs.WithAsideAsync(cancellationToken))
        {
            if (job.FinishedAt is { } finished && finished.AddHours(keepPreRestoreHours) < DateTimeOffset.UtcNow)
            {
                await ExecuteAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(job.AsideDatabase!)} WITH (FORCE)", cancellationToken);
                await jobs.MarkAsideDroppedAsync(job.Id, cancellationToken);
                dropped++;
            }
        }
        return dropped;
    }

    private async Task<RestoreJob> RunStepsAsync(RestoreJob job, IProgress<RestoreJob>? progress, CancellationToken cancellationToken)
    {
        var scratch = job.ScratchDir ?? Path.Combine(ScratchRoot, "job-" + job.Id.ToString(CultureInfo.InvariantCulture));
        var pgData = Path.Combine(scratch, "pgdata");
        var run = Path.Combine(scratch, "run");
        var port = FreePort();
        var phaseWatch = Stopwatch.StartNew();
        // Where a restore's time goes, phase by phase: the figures the restore bench is read against.
        void Phase(string name)
        {
            logger.LogInformation("Restore job {Job}: {Phase} took {Milliseconds} ms", job.Id, name, phaseWatch.ElapsedMilliseconds);
            phaseWatch.Restart();
        }
        async Task<RestoreJob> Step(int step)
        {
            await jobs.SetStepAsync(job.Id, step, CancellationToken.None);
            var current = (await jobs.GetAsync(job.Id, CancellationToken.None))!;
            progress?.Report(current);
            AfterStep?.Invoke(step);
            TestCrash.AfterStep(RestoreSteps.Names[step]);
            return current;
        }

        // Work overlapped with the critical path; always awaited before leaving, so a rollback never races it.
        Task? created = null;
        Task? scratchRemoved = null;
        using var stopLowering = new CancellationTokenSource();
        var lowering = LowerScratchAsync(scratch, stopLowering.Token);
        try
        {
            if (job.Step < RestoreSteps.FilesRestored)
            {
                await CleanScratchAsync(scratch, cancellationToken);
                await jobs.SetScratchAsync(job.Id, scratch, cancellationToken);
                PrepareScratch(scratch);
                var include = job.IncludeOnly ? job.SourceDatabase : null;
                var result = await snapshots.BackRest.RestoreAsync(pgData, scratch, job.BackupSet!, job.TargetType, job.Target,
                    include, prefetchWal: true, cancellationToken);
                if (!result.Succeeded && include is not null && result.Diagnostic.Contains("database to include", StringComparison.Ordinal))
                {
                    // The database is newer than the backup's manifest: restore the whole cluster instead.
                    logger.LogWarning("Database {Db} is not in backup {Set}; restoring without --db-include", include, job.BackupSet);
                    await jobs.SetIncludeOnlyAsync(job.Id, false, cancellationToken);
                    Directory.Delete(pgData, recursive: true);
                    PrepareScratch(scratch);
                    result = await snapshots.BackRest.RestoreAsync(pgData, scratch, job.BackupSet!, job.TargetType, job.Target,
                        null, prefetchWal: true, cancellationToken);
                }
                if (!result.Succeeded)
                {
                    throw new SnapshotException(SnapshotErrorKind.Unavailable, $"pgbackrest restore failed: {result.Diagnostic}");
                }
                Phase("pgbackrest restore");
                job = await Step(RestoreSteps.FilesRestored);
            }
            if (job.Step < RestoreSteps.TargetReached)
            {
                // The empty database the copy is loaded into is made while the copy replays.
                created = CreateNewDatabaseAsync(job, cancellationToken);
                await StartScratchAsync(scratch, pgData, run, port, cancellationToken);
                Phase("scratch start");
                var promoted = await WaitForTargetAsync(scratch, pgData, run, port, job.SourceDatabase, cancellationToken);
                Phase(promoted ? "replay to target and promote" : "replay to target");
                job = await Step(RestoreSteps.TargetReached);
            }
            if (job.Step < RestoreSteps.Loaded)
            {
                await (created ?? CreateNewDatabaseAsync(job, cancellationToken));
                Phase("create database (rest of)");
                await CopyAsync(job, scratch, run, port, () => Phase("pg_dump -j2"), cancellationToken);
                Phase("pg_restore -j2");
                job = await Step(RestoreSteps.Dumped);
                // The copy is no longer needed: it stops and goes while the rest runs.
                scratchRemoved = Task.Run(() => CleanScratchAsync(scratch, CancellationToken.None), CancellationToken.None);
                await CopyGrantsAndSettingsAsync(job.SourceDatabase, job.NewDatabase, cancellationToken);
                await UpgradeSchemaAsync(job.NewDatabase, job.TargetDatabase, cancellationToken);
                await FlushLoadAsync(job.NewDatabase, cancellationToken);
                Phase("grants, settings, migrations");
                job = await Step(RestoreSteps.Loaded);
            }
            if (job.Step < RestoreSteps.Swapped)
            {
                // Past this point the restored copy is complete: finishing is always the way forward.
                await SwapAsync(job, CancellationToken.None);
                Phase("swap");
                job = await Step(RestoreSteps.Swapped);
            }
            // Done is recorded before the scratch folder is gone: a crash from here on leaves a folder no unfinished job
            // owns, which the next start's recovery removes.
            job = await Step(RestoreSteps.Done);
            Phase("done recorded");
        }
        finally
        {
            await stopLowering.CancelAsync();
            await SettleAsync(lowering);
            await SettleAsync(created);
            await SettleAsync(scratchRemoved);
        }
        await CleanScratchAsync(job.ScratchDir, CancellationToken.None);
        Phase("cleanup");
        return job;
    }

    /// <summary>Waits for overlapped work; its failure was either reported by the step that awaited it or no longer matters.</summary>
    private async Task SettleAsync(Task? task)
    {
        if (task is null)
        {
            return;
        }
        try
        {
            await task;
        }
        catch (Exception e) when (e is not SimulatedCrashException)
        {
            logger.LogDebug(e, "Overlapped restore work failed");
        }
    }

    private async Task FinishAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        await CleanScratchAsync(job.ScratchDir, cancellationToken);
        await jobs.SetStepAsync(job.Id, RestoreSteps.Done, cancellationToken);
        AfterStep?.Invoke(RestoreSteps.Done);
    }

    private static void PrepareScratch(string scratch)
    {
        var root = Path.GetDirectoryName(scratch)!;
        Directory.CreateDirectory(root);
        CommandRunner.GiveToServerUser(root);
        foreach (var dir in new[] { "", "pgdata", "run", "spool", "lock", "log" })
        {
            var path = Path.Combine(scratch, dir);
            Directory.CreateDirectory(path);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            CommandRunner.GiveToServerUser(path);
        }
    }

    /// <summary>
    /// Settings of the throwaway copy, given on the command line so they beat the restored configuration files: no TCP,
    /// its own socket, never archiving. Nothing of it survives a crash (the copy is always rebuilt), so it never syncs to
    /// disk, and restartpoints are pushed out of the way of replay.
    /// </summary>
    internal static IReadOnlyList<string> ScratchSettings(string run, int port) =>
    [
        $"-p {port}", $"-k {run}", "-c listen_addresses=''", "-c archive_mode=off", "-c archive_command=/bin/false",
        "-c logging_collector=off", "-c autovacuum=off", "-c fsync=off", "-c full_page_writes=off",
        "-c synchronous_commit=off", "-c shared_buffers=512MB", "-c max_wal_size=64GB", "-c checkpoint_timeout=1d",
        "-c recovery_prefetch=try", "-c maintenance_io_concurrency=32", "-c hot_standby=on",
    ];

    private async Task StartScratchAsync(string scratch, string pgData, string run, int port, CancellationToken cancellationToken)
    {
        var (program, arguments) = Idle(binaries.Value["pg_ctl"],
            ["start", "-D", pgData, "-l", Path.Combine(scratch, "log", "postgresql.log"), "-W", "-s", "-o", string.Join(' ', ScratchSettings(run, port))]);
        var result = await CommandRunner.RunAsync(program, arguments, CommandRunner.ServerUser, TimeSpan.FromMinutes(2), cancellationToken);
        if (!result.Succeeded)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable, $"the scratch copy did not start: {result.Diagnostic}");
        }
    }

    /// <summary>Runs a command at the lowest CPU priority and the idle IO class, so scratch work leaves both to live tenants.</summary>
    internal static (string Program, List<string> Arguments) Idle(string program, IEnumerable<string> arguments) =>
        CommandRunner.LowPriority(program, arguments, "-c", "3");

    /// <summary>
    /// Polls until replay is paused at the target; true when the copy had to be promoted. pg_ctl's exit code says nothing
    /// about reaching it, and a target past the end of the archive makes the copy shut down, which the log then explains.
    /// </summary>
    /// <remarks>
    /// The copy is dumped while paused, as a hot standby, whenever it can be: a standby never writes the hint bits its
    /// reads set, while a promoted copy (data checksums on) writes every page pg_dump reads for the first time after
    /// promotion's checkpoint, a full-page image of it into WAL and the page itself. On a 1 GB tenant that made
    /// pg_dump take 16 to 23 s instead of 8.5 s, and wrote 2 GB that competed with the live cluster's disk.
    /// </remarks>
    private static async Task<bool> WaitForTargetAsync(string scratch, string pgData, string run, int port, string database,
        CancellationToken cancellationToken)
    {
        var endpoint = new PostgresEndpoint(run, port, EmbeddedCluster.Superuser, null);
        var log = Path.Combine(scratch, "log", "postgresql.log");
        var watch = Stopwatch.StartNew();
        await using var dataSource = NpgsqlDataSource.Create(endpoint.ConnectionString("postgres") + ";Pooling=false;Timeout=3");
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await using var command = dataSource.CreateCommand("SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END");
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                if (!reader.GetBoolean(0))
                {
                    return true;
                }
                if (reader.GetString(1) == "paused")
                {
                    await reader.DisposeAsync();
                    // Paused replay can hold the lock of a transaction that was open at the target (a DROP TABLE
                    // replayed but not committed), which would block pg_dump for ever. Replay holds no other locks
                    // and, paused, takes none, so without such a lock the paused copy is dumped as it is. With one,
                    // promoting the copy ends recovery right there and aborts such transactions; archiving is off,
                    // so nothing is pushed.
                    await using (var locks = dataSource.CreateCommand("""
                        SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
                            AND (database = 0 OR database = (SELECT oid FROM pg_database WHERE datname = $1)))
                        """))
                    {
                        locks.Parameters.AddWithValue(database);
                        if (await locks.ExecuteScalarAsync(cancellationToken) is false)
                        {
                            return false;
                        }
                    }
                    await using var promote = dataSource.CreateCommand("SELECT pg_promote(true, 300)");
                    await promote.ExecuteNonQueryAsync(cancellationToken);
                    continue;
                }
            }
            catch (Exception e) when (e is NpgsqlException or SocketException
                && (e is not PostgresException pe || pe.SqlState == PostgresErrorCodes.CannotConnectNow))
            {
                if (watch.Elapsed > TimeSpan.FromSeconds(2) && !File.Exists(Path.Combine(pgData, "postmaster.pid")))
                {
                    var lines = File.Exists(log) ? File.ReadLines(log).ToList() : [];
                    var problems = lines.Where(l => (l.Contains("FATAL", StringComparison.Ordinal) && !l.Contains("starting up", StringComparison.Ordinal)) || l.Contains("PANIC", StringComparison.Ordinal) || l.Contains("ERROR", StringComparison.Ordinal)).Take(5);
                    var tail = string.Join('\n', problems.Concat(lines.TakeLast(3)));
                    throw new SnapshotException(SnapshotErrorKind.Invalid, tail.Contains("before configured recovery target", StringComparison.Ordinal)
                        ? "the WAL archive ends before the target: it was never reached"
                        : $"the scratch copy stopped during replay: {tail}");
                }
            }
            if (watch.Elapsed > TimeSpan.FromHours(6))
            {
                throw new TimeoutException("replay did not reach the target within 6 hours");
            }
            // Short: every poll is a local query, and the wait after the pause is pure delay of the whole restore.
            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>(Re)creates the empty database the copy is loaded into, with the source's owner, encoding and collation.</summary>
    private async Task CreateNewDatabaseAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = DatabaseAdmin.QuoteIdentifier(job.NewDatabase);
        await ExecuteAsync($"DROP DATABASE IF EXISTS {target} WITH (FORCE)", cancellationToken);
        string owner, encoding, collate, ctype;
        await using (var source = admin.CreateCommand("""
            SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1
            """))
        {
            source.Parameters.AddWithValue(job.SourceDatabase);
            await using var reader = await source.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                throw new SnapshotException(SnapshotErrorKind.NotFound, $"database {job.SourceDatabase} is gone");
            }
            (owner, encoding, collate, ctype) = (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3));
        }
        await ExecuteAsync($"CREATE DATABASE {target} OWNER {DatabaseAdmin.QuoteIdentifier(owner)} TEMPLATE template0 " +
            $"ENCODING {Literal(encoding)} LC_COLLATE {Literal(collate)} LC_CTYPE {Literal(ctype)}", cancellationToken);
    }

    /// <summary>
    /// Copies the tenant from the scratch copy into the new database as a plain dump and load would: pg_dump -Fd -j2
    /// (uncompressed) into the scratch folder, then pg_restore -j2, with the tables' rows loaded frozen (see
    /// <see cref="LoadFrozenAsync"/>). Piping one into the other overlaps them but forces a single job on each side,
    /// which on a 1 GB tenant took twice as long (62 s against 30 s here). Both sides run idle; the live backends that
    /// serve the load are lowered too, as they compete with the other tenants.
    /// </summary>
    private async Task CopyAsync(RestoreJob job, string scratch, string run, int port, Action dumped, CancellationToken cancellationToken)
    {
        // Watched from the dump on, so that the load knows from its first byte whether others are at work.
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pace = new LoadPace(PacedBytesPerSecond);
        var watch = WatchOtherTenantsAsync(pace, [job.NewDatabase, job.TargetDatabase, jobs.DatabaseName, "postgres"], watching.Token);
        try
        {
            await DumpAndLoadAsync(job, scratch, run, port, dumped, pace, cancellationToken);
        }
        finally
        {
            await watching.CancelAsync();
            await SettleAsync(watch);
            LastLoadPacedFor = pace.PacedFor;
            if (pace.PacedFor > TimeSpan.Zero)
            {
                logger.LogInformation("Restore job {Job}: the load waited {Seconds:F1} s in all to keep its pace beside other tenants' work",
                    job.Id, pace.PacedFor.TotalSeconds);
            }
        }
    }

    /// <summary>
    /// Tells <paramref name="pace"/>, four times a second, when a client session of a database other than
    /// <paramref name="excluded"/> (the restore's own, the management database, the admin connections') last started or
    /// ended a statement: pg_stat_activity has it at once, where the databases' transaction counters lag up to a second.
    /// </summary>
    private async Task WatchOtherTenantsAsync(LoadPace pace, string[] excluded, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await using (var command = admin.CreateCommand("""
                    SELECT extract(epoch FROM clock_timestamp() - max(CASE WHEN state = 'active' THEN clock_timestamp() ELSE state_change END))::float8
                    FROM pg_stat_activity
                    WHERE backend_type = 'client backend' AND datname <> ALL($1) AND pid <> pg_backend_pid()
                    """))
                {
                    command.Parameters.AddWithValue(excluded);
                    var seconds = await command.ExecuteScalarAsync(cancellationToken);
                    pace.Observe(seconds is double since ? TimeSpan.FromSeconds(Math.Max(0, since)) : null);
                }
                await Task.Delay(250, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // the load is over
        }
    }

    private async Task DumpAndLoadAsync(RestoreJob job, string scratch, string run, int port, Action dumped, LoadPace pace,
        CancellationToken cancellationToken)
    {
        var dump = Path.Combine(scratch, "dump");
        if (Directory.Exists(dump))
        {
            // A dump cut short by a crash is taken again: pg_dump -Fd refuses a folder that is not empty.
            Directory.Delete(dump, recursive: true);
        }
        var (dumpProgram, dumpArguments) = Idle(binaries.Value["pg_dump"],
            ["-h", run, "-p", port.ToString(CultureInfo.InvariantCulture), "-U", EmbeddedCluster.Superuser,
             "-Fd", "-j", "2", "-Z0", "-f", dump, job.SourceDatabase]);
        Check(await CommandRunner.RunAsync(dumpProgram, dumpArguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), cancellationToken),
            "pg_dump of the restored copy");
        dumped();

        var application = "loomworks-restore-" + job.Id.ToString(CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string>
        {
            ["PGAPPNAME"] = application,
            // Index builds get memory; commits need not wait for the disk, as nothing sees the database before the swap
            // and FlushLoadAsync makes its WAL durable before the load is recorded as done. The load's backends hand
            // what they write to the disk every 256 kB (backend_flush_after) instead of leaving it dirty in the page
            // cache: a gigabyte of it written back at once queues every other tenant's commit behind it.
            ["PGOPTIONS"] = "-c maintenance_work_mem=256MB -c synchronous_commit=off -c backend_flush_after=256kB" +
                // Kept to one CPU, the load gains nothing from parallel index builds, whose workers start on any CPU
                // until LowerBackendsAsync finds them.
                (LowPriorityCpus.Cpus.Count == 1 ? " -c max_parallel_maintenance_workers=0" : ""),
        };
        if (liveEndpoint.Password is { } password)
        {
            environment["PGPASSWORD"] = password;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var lowering = LowerBackendsAsync(application, stop.Token);
        try
        {
            var contents = await TableOfContentsAsync(dump, cancellationToken);
            var frozen = await FrozenTablesAsync(job, dump, contents, run, port, cancellationToken);
            if (frozen.Count == 0)
            {
                await RestoreDumpAsync(job, dump, environment, [], cancellationToken);
                return;
            }
            await RestoreDumpAsync(job, dump, environment, ["--section=pre-data"], cancellationToken);
            await LoadFrozenAsync(job, scratch, frozen, environment, pace, cancellationToken);
            // Everything else of the data section (sequence values, large objects) and all of post-data.
            var list = Path.Combine(scratch, "rest.list");
            var handled = frozen.Select(t => t.DumpId).ToHashSet();
            await File.WriteAllLinesAsync(list, contents.Select(line => TocDumpId(line) is { } id && handled.Contains(id) ? ";" + line : line), cancellationToken);
            CommandRunner.GiveToServerUser(list);
            await RestoreDumpAsync(job, dump, environment, ["--section=data", "--section=post-data", "-L", list], cancellationToken);
        }
        finally
        {
            await stop.CancelAsync();
            await SettleAsync(lowering);
        }
    }

    private async Task RestoreDumpAsync(RestoreJob job, string dump, Dictionary<string, string> environment, IEnumerable<string> options,
        CancellationToken cancellationToken)
    {
        var (program, arguments) = Idle(binaries.Value["pg_restore"], [.. LiveConnection(job.NewDatabase), "-j", "2", .. options, dump]);
        Check(await CommandRunner.RunAsync(program, arguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), environment,
            cancellationToken), $"pg_restore into {job.NewDatabase}");
    }

    /// <summary>The client options that reach <paramref name="database"/> on the live server, for pg_restore and psql.</summary>
    private string[] LiveConnection(string database) =>
        ["-h", liveEndpoint.Host, "-p", liveEndpoint.Port.ToString(CultureInfo.InvariantCulture), "-U", liveEndpoint.Username, "-d", database];

    /// <summary>A table whose rows <see cref="LoadFrozenAsync"/> loads: its dump entry, quoted name, column list and data file.</summary>
    private sealed record FrozenTable(int DumpId, string Name, string Columns, string DataFile, long Bytes);

    [GeneratedRegex(@"^(\d+); \d+ (\d+) TABLE DATA ")]
    private static partial Regex TableDataEntry();

    [GeneratedRegex(@"^(\d+); ")]
    private static partial Regex TocEntry();

    private static int? TocDumpId(string line) =>
        TocEntry().Match(line) is { Success: true } m ? int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture) : null;

    private async Task<IReadOnlyList<string>> TableOfContentsAsync(string dump, CancellationToken cancellationToken)
    {
        var result = await CommandRunner.RunAsync(binaries.Value["pg_restore"], ["-l", dump], CommandRunner.ServerUser,
            TimeSpan.FromMinutes(10), cancellationToken);
        Check(result, "pg_restore -l of the dump");
        return result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>
    /// The ordinary tables of the dump whose rows are loaded frozen, named and described by the paused copy (the dump's
    /// listing is ambiguous for names with spaces). Only a UTF-8 database qualifies, so that the script's names and the
    /// data files' bytes share psql's client encoding; and only names a psql script line can carry. Anything else is
    /// left to pg_restore, which loads it as before.
    /// </summary>
    private static async Task<IReadOnlyList<FrozenTable>> FrozenTablesAsync(RestoreJob job, string dump, IReadOnlyList<string> contents,
        string run, int port, CancellationToken cancellationToken)
    {
        var entries = new Dictionary<long, int>();
        foreach (var line in contents)
        {
            if (TableDataEntry().Match(line) is { Success: true } m)
            {
                entries[long.Parse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture)] = int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
            }
        }
        if (entries.Count == 0)
        {
            return [];
        }
        var endpoint = new PostgresEndpoint(run, port, EmbeddedCluster.Superuser, null);
        await using var dataSource = NpgsqlDataSource.Create(endpoint.ConnectionString(job.SourceDatabase) + ";Pooling=false");
        await using var command = dataSource.CreateCommand("""
            SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname),
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                   pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database()))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid::bigint = ANY($1) AND c.relkind = 'r'
            """);
        command.Parameters.AddWithValue(entries.Keys.ToArray());
        var tables = new List<FrozenTable>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var (name, columns) = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
            if (reader.GetString(3) != "UTF8")
            {
                return [];
            }
            var dumpId = entries[reader.GetInt64(0)];
            var file = Path.Combine(dump, dumpId.ToString(CultureInfo.InvariantCulture) + ".dat");
            if (!File.Exists(file) || name.Any(char.IsControl) || columns?.Any(char.IsControl) == true)
            {
                continue;
            }
            tables.Add(new FrozenTable(dumpId, name, columns is null ? "" : "(" + columns + ")", file, new FileInfo(file).Length));
        }
        return tables;
    }

    /// <summary>
    /// Loads the tables' rows frozen: each in its own transaction that first truncates it, so COPY FREEZE applies. pg_restore
    /// loads them unfrozen, so the index builds that follow set a hint bit on every heap page, writing each page a
    /// second time and, with data checksums, a full-page image of it into WAL when a checkpoint came between (the
    /// load's own WAL brings one): a 300 MB table wrote 290 MB of WAL for its primary key instead of 6 MB. Frozen rows
    /// need no hint bits and later vacuums skip their pages. Two psql scripts share the tables, largest first; each reads
    /// its tables' rows from its standard input, which this process writes at the pace <paramref name="pace"/> sets.
    /// </summary>
    private async Task LoadFrozenAsync(RestoreJob job, string scratch, IReadOnlyList<FrozenTable> tables,
        Dictionary<string, string> environment, LoadPace pace, CancellationToken cancellationToken)
    {
        var workers = new[] { new List<FrozenTable>(), new List<FrozenTable>() };
        var sizes = new long[2];
        foreach (var table in tables.OrderByDescending(t => t.Bytes))
        {
            var worker = sizes[0] <= sizes[1] ? 0 : 1;
            sizes[worker] += table.Bytes;
            workers[worker].Add(table);
        }
        var clientEnvironment = new Dictionary<string, string>(environment) { ["PGCLIENTENCODING"] = "UTF8" };
        var runs = new List<Task<CommandResult>>();
        for (var i = 0; i < workers.Length; i++)
        {
            if (workers[i].Count == 0)
            {
                continue;
            }
            var script = new StringBuilder();
            foreach (var table in workers[i])
            {
                script.Append(CultureInfo.InvariantCulture, $"BEGIN;\nTRUNCATE ONLY {table.Name};\n")
                    .Append(CultureInfo.InvariantCulture, $"\\copy {table.Name} {table.Columns} FROM pstdin WITH (FREEZE)\n")
                    .Append("COMMIT;\n");
            }
            var path = Path.Combine(scratch, $"load-{i}.sql");
            await File.WriteAllTextAsync(path, script.ToString(), cancellationToken);
            CommandRunner.GiveToServerUser(path);
            var (program, arguments) = Idle(binaries.Value["psql"],
                ["-X", "-q", "-v", "ON_ERROR_STOP=1", .. LiveConnection(job.NewDatabase), "-f", path]);
            var feed = workers[i];
            runs.Add(CommandRunner.RunAsync(program, arguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), clientEnvironment,
                cancellationToken, (stdin, token) => FeedTablesAsync(feed, stdin, pace, token)));
        }
        foreach (var result in await Task.WhenAll(runs))
        {
            Check(result, $"loading the rows into {job.NewDatabase}");
        }
    }

    /// <summary>
    /// Writes each table's rows in turn, each ended by the line "\." that ends a \copy's rows and nothing after it: pg_dump
    /// ends a data file with that line and two empty ones, which the next table's \copy would take for rows. A row cannot
    /// be that line (COPY writes a backslash in data as two).
    /// </summary>
    private static Task FeedTablesAsync(IEnumerable<FrozenTable> tables, Stream stdin, LoadPace pace, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() =>
        {
            foreach (var table in tables)
            {
                using var data = new FileStream(table.DataFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
                var (rows, ended) = RowsLength(data);
                data.Position = 0;
                pace.Copy(data, rows, stdin, cancellationToken);
                if (!ended)
                {
                    stdin.Write("\\.\n"u8);
                }
            }
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// The length of a COPY data file up to and with its closing "\." line, or all of it when it has none (no rows, or
    /// rows alone).
    /// </summary>
    internal static (long Length, bool Ended) RowsLength(Stream data)
    {
        var tail = new byte[(int)Math.Min(data.Length, 64)];
        data.Position = data.Length - tail.Length;
        data.ReadExactly(tail);
        var end = tail.Length;
        while (end > 0 && tail[end - 1] == (byte)'\n')
        {
            end--;
        }
        var ended = end >= 2 && tail[end - 2] == (byte)'\\' && tail[end - 1] == (byte)'.' && end < tail.Length
            && (end == 2 ? tail.Length == data.Length : tail[end - 3] == (byte)'\n');
        return ended ? (data.Length - tail.Length + end + 1, true) : (data.Length, false);
    }

    /// <summary>A tool that failed: the error names it and carries its messages.</summary>
    private static void Check(CommandResult result, string what)
    {
        if (!result.Succeeded)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable,
                $"{what} failed (exit {result.ExitCode}): {Shorten(result.Diagnostic, 2000)}");
        }
    }

    /// <summary>
    /// Gives the live backends serving the load (found by their application name) the lowest CPU and IO priority, each in
    /// its own lowered scheduling group, so the other tenants' sessions go first; PostgreSQL forks them, so nice on
    /// pg_restore alone does not reach them.
    /// A lowering that is refused (not root, process gone) only costs the neighbours some latency.
    /// </summary>
    private async Task LowerBackendsAsync(string application, CancellationToken cancellationToken)
    {
        var lowered = new HashSet<int>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // With the parallel workers their index builds start.
                await using (var command = admin.CreateCommand("""
                    SELECT pid FROM pg_stat_activity WHERE application_name = $1
                        OR leader_pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = $1)
                    """))
                {
                    command.Parameters.AddWithValue(application);
                    await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                    while (await reader.ReadAsync(cancellationToken))
                    {
                        var pid = reader.GetInt32(0);
                        if (!lowered.Contains(pid) && Lower(pid))
                        {
                            lowered.Add(pid);
                            _ = await CommandRunner.RunAsync("/usr/bin/ionice", ["-c", "3", "-p", pid.ToString(CultureInfo.InvariantCulture)],
                                null, TimeSpan.FromSeconds(10), CancellationToken.None);
                        }
                    }
                }
                await Task.Delay(100, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // the load is over
        }
    }

    /// <summary>
    /// The load committed without waiting for the disk: one synchronous commit on the same server flushes the WAL up to
    /// it, and so all of the load, before the step that lets a crash finish the swap is recorded.
    /// </summary>
    private async Task FlushLoadAsync(string database, CancellationToken cancellationToken)
    {
        await using var connection = await admin.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SET synchronous_commit = on; COMMENT ON DATABASE {DatabaseAdmin.QuoteIdentifier(database)} IS NULL", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// A snapshot from before a Loomworks upgrade lacks the newer tenant migrations: the restored database gets them
    /// before the swap, as any tenant does at start. A database without the tenant schema is left as it is.
    /// </summary>
    private async Task UpgradeSchemaAsync(string database, string target, CancellationToken cancellationToken)
    {
        if (Schema is null)
        {
            return;
        }
        var builder = new NpgsqlConnectionStringBuilder(liveEndpoint.ConnectionString(database)) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        if (await TenantProvisioner.UpgradeSchemaAsync(connection, Schema, cancellationToken) == 0)
        {
            return;
        }
        // Tables a migration added belong to the tenant's login role as the others do, once the role exists.
        var role = TenantProvisioner.RoleNameFor(target);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", connection);
        exists.Parameters.AddWithValue(role);
        if (await exists.ExecuteScalarAsync(cancellationToken) is null)
        {
            return;
        }
        var quotedRole = DatabaseAdmin.QuoteIdentifier(role);
        await using var grant = new NpgsqlCommand($"""
            GRANT USAGE, CREATE ON SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL TABLES IN SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {quotedRole}
            """, connection);
        await grant.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task CopyGrantsAndSettingsAsync(string from, string to, CancellationToken cancellationToken)
    {
        var target = DatabaseAdmin.QuoteIdentifier(to);
        var grants = new List<(string Privilege, string? Grantee)>();
        bool hasAcl;
        await using (var acl = admin.CreateCommand("SELECT datacl IS NOT NULL FROM pg_database WHERE datname = $1"))
        {
            acl.Parameters.AddWithValue(from);
            hasAcl = await acl.ExecuteScalarAsync(cancellationToken) is true;
        }
        if (hasAcl)
        {
            await using var command = admin.CreateCommand("""
                SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
                FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1
                """);
            command.Parameters.AddWithValue(from);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                grants.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1)));
            }
            await ExecuteAsync($"REVOKE ALL ON DATABASE {target} FROM PUBLIC", cancellationToken);
            foreach (var (privilege, grantee) in grants.Where(g => g.Privilege is "CONNECT" or "CREATE" or "TEMPORARY"))
            {
                await ExecuteAsync($"GRANT {privilege} ON DATABASE {target} TO " +
                    (grantee is null ? "PUBLIC" : DatabaseAdmin.QuoteIdentifier(grantee)), cancellationToken);
            }
        }
        var settings = new List<(string? Role, string Setting)>();
        await using (var command = admin.CreateCommand("""
            SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1
            """))
        {
            command.Parameters.AddWithValue(from);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                settings.Add((reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetString(1)));
            }
        }
        foreach (var (role, setting) in settings)
        {
            var equals = setting.IndexOf('=', StringComparison.Ordinal);
            var key = setting[..equals];
            if (!SettingName().IsMatch(key))
            {
                continue;
            }
            var inRole = role is null ? "" : $" IN ROLE {DatabaseAdmin.QuoteIdentifier(role)}";
            await ExecuteAsync($"ALTER DATABASE {target}{inRole} SET {key} = {Literal(setting[(equals + 1)..])}", cancellationToken);
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_.]{0,62}$")]
    private static partial Regex SettingName();

    /// <summary>
    /// Puts the restored copy in place. Idempotent, so a crash anywhere inside is finished by running it again: which
    /// of the three databases exist says how far it got. The tenant answers 503 (state restoring) only meanwhile.
    /// </summary>
    private async Task SwapAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = job.TargetDatabase;
        if (job.AsSubdomain is not null)
        {
            if (await DatabaseExistsAsync(job.NewDatabase, cancellationToken) && !await DatabaseExistsAsync(target, cancellationToken))
            {
                await ExecuteAsync($"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(job.NewDatabase)} RENAME TO {DatabaseAdmin.QuoteIdentifier(target)}", cancellationToken);
            }
            await snapshots.InsertTenantAsync(job.AsSubdomain, target, cancellationToken);
            return;
        }
        await tenants.SetStateAsync(job.TenantId, TenantStates.Restoring, cancellationToken);
        await ReplaceDatabaseAsync(target, job.NewDatabase, job.AsideDatabase!, cancellationToken);
        await tenants.SetStateAsync(job.TenantId, TenantStates.Active, cancellationToken);
    }

    /// <summary>
    /// Puts <paramref name="replacement"/> in the place of <paramref name="target"/>, which is set aside under
    /// <paramref name="asideName"/>; run again after a crash, it finishes what is left. The tenant cannot be reached
    /// from the refusal of new sessions until the renames commit, both at once, so nothing leaves it without a database.
    /// </summary>
    private async Task ReplaceDatabaseAsync(string target, string replacement, string asideName, CancellationToken cancellationToken)
    {
        var quotedTarget = DatabaseAdmin.QuoteIdentifier(target);
        if (await DatabaseExistsAsync(replacement, cancellationToken))
        {
            if (await DatabaseExistsAsync(target, cancellationToken))
            {
                await ExecuteAsync($"ALTER DATABASE {quotedTarget} ALLOW_CONNECTIONS false", cancellationToken);
                await RenameAsync([(target, asideName), (replacement, target)], cancellationToken);
            }
            else
            {
                await RenameAsync(replacement, target, cancellationToken);
            }
        }
        await ExecuteAsync($"ALTER DATABASE {quotedTarget} ALLOW_CONNECTIONS true", cancellationToken);
    }

    private async Task UndoStepsAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = job.TargetDatabase;
        var undone = "lwundone_" + job.Id.ToString(CultureInfo.InvariantCulture);
        await tenants.SetStateAsync(job.TenantId, TenantStates.Restoring, cancellationToken);
        await ReplaceDatabaseAsync(target, job.AsideDatabase!, undone, cancellationToken);
        await tenants.SetStateAsync(job.TenantId, TenantStates.Active, cancellationToken);
        await ExecuteAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(undone)} WITH (FORCE)", cancellationToken);
        await jobs.MarkUndoneAsync(job.Id, cancellationToken);
    }

    private Task RenameAsync(string from, string to, CancellationToken cancellationToken) => RenameAsync([(from, to)], cancellationToken);

    /// <summary>
    /// Renames databases, in order and in one transaction, after closing their sessions; retried, since a session may
    /// slip in between. A backend on its way in or out (a connection refused at startup, an autovacuum worker just
    /// terminated) is not in pg_stat_activity, but the rename counts it and then sleeps 100 ms before looking again,
    /// which put a swap at 140 ms: the first attempts are cut off at <see cref="QuickRenameTimeout"/> and retried instead
    /// (both renames roll back together).
    /// </summary>
    private async Task RenameAsync(IReadOnlyList<(string From, string To)> renames, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            foreach (var (from, _) in renames)
            {
                await CloseSessionsAsync(from, cancellationToken);
            }
            try
            {
                await using var connection = await admin.OpenConnectionAsync(cancellationToken);
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                if (attempt < QuickRenameAttempts)
                {
                    await using var timeout = new NpgsqlCommand(
                        $"SET LOCAL statement_timeout = {(int)QuickRenameTimeout.TotalMilliseconds}", connection, transaction);
                    await timeout.ExecuteNonQueryAsync(cancellationToken);
                }
                foreach (var (from, to) in renames)
                {
                    await using var rename = new NpgsqlCommand(
                        $"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(from)} RENAME TO {DatabaseAdmin.QuoteIdentifier(to)}", connection, transaction);
                    await rename.ExecuteNonQueryAsync(cancellationToken);
                }
                await transaction.CommitAsync(cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled && attempt < QuickRenameAttempts)
            {
                // Cut off in the rename's own 100 ms wait: the late session is gone by now, or the next attempt sees it.
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 50)
            {
                await Task.Delay(20, cancellationToken);
            }
        }
    }

    /// <summary>How many renames are tried with <see cref="QuickRenameTimeout"/> before the rename may wait as long as it needs.</summary>
    private const int QuickRenameAttempts = 5;

    /// <summary>Far above a rename's own few milliseconds, well under the 100 ms it sleeps on finding a session.</summary>
    private static readonly TimeSpan QuickRenameTimeout = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Ends every session on <paramref name="database"/> and waits until they are gone. A rename that still finds one
    /// waits on its own in steps of 100 ms, which was most of a swap with the tenant in use; this wait polls every 2 ms,
    /// for at most 5 s, after which the rename's own wait and the retries above take over.
    /// </summary>
    private async Task CloseSessionsAsync(string database, CancellationToken cancellationToken)
    {
        if (evictDatabase is not null)
        {
            await evictDatabase(database);
        }
        await using var terminate = admin.CreateCommand("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
            """);
        terminate.Parameters.AddWithValue(database);
        var watch = Stopwatch.StartNew();
        while ((long)(await terminate.ExecuteScalarAsync(cancellationToken))! > 0 && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(2, cancellationToken);
        }
    }

    private async Task RollBackAsync(RestoreJob job, string error, CancellationToken cancellationToken)
    {
        await CleanScratchAsync(job.ScratchDir, cancellationToken);
        if (job.AsSubdomain is null && !await DatabaseExistsAsync(job.TargetDatabase, cancellationToken)
            && await DatabaseExistsAsync(job.AsideDatabase!, cancellationToken))
        {
            // A failure inside the swap: put the original back.
            await RenameAsync(job.AsideDatabase!, job.TargetDatabase, cancellationToken);
            await ExecuteAsync($"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(job.TargetDatabase)} ALLOW_CONNECTIONS true", cancellationToken);
        }
        if (job.AsSubdomain is null && await DatabaseExistsAsync(job.TargetDatabase, cancellationToken))
        {
            await ExecuteAsync($"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(job.TargetDatabase)} ALLOW_CONNECTIONS true", cancellationToken);
            await tenants.SetStateAsync(job.TenantId, TenantStates.Active, cancellationToken);
        }
        await ExecuteAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(job.NewDatabase)} WITH (FORCE)", cancellationToken);
        await jobs.FailAsync(job.Id, error, cancellationToken);
    }

    /// <summary>Stops a scratch copy's PostgreSQL if one runs there and deletes the folder.</summary>
    public async Task CleanScratchAsync(string? scratch, CancellationToken cancellationToken)
    {
        if (scratch is null || !Directory.Exists(scratch))
        {
            return;
        }
        var pgData = Path.Combine(scratch, "pgdata");
        if (File.Exists(Path.Combine(pgData, "postmaster.pid")))
        {
            await StopScratchAsync(pgData);
        }
        KillHelpersOf(scratch);
        // Removed by a low-priority rm on the restore's CPUs rather than by this process: freeing gigabytes of a copy in
        // memory is long kernel work, which belongs off the CPU kept for the tenants.
        var (program, arguments) = Idle("/bin/rm", ["-rf", "--", scratch]);
        var removed = await CommandRunner.RunAsync(program, arguments, null, TimeSpan.FromMinutes(30), CancellationToken.None);
        if (!removed.Succeeded && Directory.Exists(scratch))
        {
            Directory.Delete(scratch, recursive: true);
        }
        if (MemoryRoot is { } memory && Path.GetDirectoryName(scratch) == memory)
        {
            try
            {
                // Not left behind in /dev/shm once empty; another job's copy in it keeps it.
                Directory.Delete(memory);
            }
            catch (IOException)
            {
                // not empty
            }
        }
    }

    /// <summary>
    /// Ends what still works on a scratch folder once its PostgreSQL is gone: the archive-get worker that fetches WAL
    /// ahead detaches from the copy and may still be filling the spool. Waits (at most 5 s) until they are gone: a killed
    /// process still runs until the kernel has torn it down, and a caller that saw it return takes the folder as free.
    /// </summary>
    private static void KillHelpersOf(string scratch)
    {
        var watch = Stopwatch.StartNew();
        while (Processes(scratch).Where(p => p.MentionsScratch).Select(p => p.Pid).ToList() is { Count: > 0 } helpers
            && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            foreach (var pid in helpers)
            {
                _ = Kill(pid, 9);
            }
            Thread.Sleep(10);
        }
    }

    /// <summary>
    /// Every process with its parent, and whether it works on the scratch folder: found by the folder in its command
    /// line, which is unique to the job (the copy's postmaster, pgBackRest and its detached archive-get worker, pg_dump,
    /// the loaders). Processes that end meanwhile are left out.
    /// </summary>
    private static IEnumerable<(int Pid, int Parent, bool MentionsScratch)> Processes(string scratch)
    {
        var marker = Encoding.UTF8.GetBytes(Path.TrimEndingDirectorySeparator(scratch) + "/");
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId)
            {
                continue;
            }
            (int, int, bool)? process = null;
            try
            {
                var parent = CommandRunner.StatField(pid, CommandRunner.StatParent);
                process = (pid, parent, File.ReadAllBytes(Path.Combine(dir, "cmdline")).AsSpan().IndexOf(marker) >= 0);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // gone meanwhile
            }
            if (process is { } found)
            {
                yield return found;
            }
        }
    }

    /// <summary>
    /// Keeps everything working on the scratch copy at the lowest CPU priority for the whole job, each process in its
    /// own lowered scheduling group (<see cref="CommandRunner.LowerSessionGroup"/>): the copy's postmaster forks a session
    /// per process (replay, the backends serving pg_dump) and pgBackRest's archive-get worker detaches into one. Before,
    /// a neighbour's 150 MB scan took five times as long during replay and dump as without a restore.
    /// </summary>
    private static async Task LowerScratchAsync(string scratch, CancellationToken cancellationToken)
    {
        var lowered = new HashSet<int>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // The copy's own processes (replay, backends) name no folder: they are the children of one that does.
                var processes = Processes(scratch).ToList();
                var working = processes.Where(p => p.MentionsScratch).Select(p => p.Pid).ToHashSet();
                foreach (var (pid, parent, _) in processes)
                {
                    if ((working.Contains(pid) || working.Contains(parent)) && !lowered.Contains(pid) && Lower(pid))
                    {
                        lowered.Add(pid);
                    }
                }
                await Task.Delay(200, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // the job is over
        }
    }

    private async Task StopScratchAsync(string pgData)
    {
        // Immediate: the copy is thrown away, so there is nothing to flush.
        await CommandRunner.RunAsync(binaries.Value["pg_ctl"], ["stop", "-D", pgData, "-m", "immediate", "-w", "-t", "60"],
            CommandRunner.ServerUser, TimeSpan.FromSeconds(90), CancellationToken.None);
        var pidFile = Path.Combine(pgData, "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid)
            && Directory.Exists($"/proc/{pid}"))
        {
            _ = Kill(pid, 9);
        }
    }

    /// <summary>
    /// Where the job's scratch copy goes, refusing when the disk cannot take it. Memory first: the copy is written and
    /// read once and thrown away, yet on disk its gigabytes (restored files, replay, dump) went through the same disk
    /// queue as the live tenants' commits, whose latency rose tenfold. In memory only the load into the live server
    /// touches the disk. The copy must leave half of the available memory to everything else.
    /// </summary>
    private async Task<string> ChooseScratchRootAsync(string database, BackupSet set, CancellationToken cancellationToken)
    {
        long size, walSinceBackup;
        await using (var command = admin.CreateCommand(
            "SELECT pg_database_size($1), pg_wal_lsn_diff(pg_current_wal_lsn(), $2)::bigint"))
        {
            command.Parameters.AddWithValue(database);
            command.Parameters.Add(new NpgsqlParameter { Value = set.StartLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            (size, walSinceBackup) = (reader.GetInt64(0), Math.Max(0, reader.GetInt64(1)));
        }
        // Scratch: the copy, the WAL replayed since the backup, its dump, and the system databases. Live: the new
        // database and about as much WAL as it writes. On one file system both add up.
        var scratchNeeded = 2 * size + walSinceBackup + (64L << 20);
        var liveNeeded = 2 * size + (64L << 20);
        Directory.CreateDirectory(dataDir);
        if (MemoryRoot is { } memory && scratchNeeded <= MemoryAvailable() / 2 && FreeBytes(Path.GetDirectoryName(memory)!) >= scratchNeeded)
        {
            CheckFree([(dataDir, liveNeeded)]);
            return memory;
        }
        Directory.CreateDirectory(ScratchRoot);
        var sameDisk = string.Equals(new DriveInfo(ScratchRoot).Name, new DriveInfo(dataDir).Name, StringComparison.Ordinal);
        CheckFree(sameDisk ? [(ScratchRoot, scratchNeeded + liveNeeded)] : [(ScratchRoot, scratchNeeded), (dataDir, liveNeeded)]);
        return ScratchRoot;
    }

    private void CheckFree(IEnumerable<(string Dir, long Needed)> checks)
    {
        foreach (var (dir, needed) in checks)
        {
            var free = FreeBytes(dir);
            if (free < needed)
            {
                throw new SnapshotException(SnapshotErrorKind.Unavailable,
                    $"not enough free disk space for the restore: about {needed >> 20} MB needed in {dir}, {free >> 20} MB free; " +
                    "nothing was changed");
            }
        }
    }

    private static long ReadMemoryAvailable()
    {
        // "MemAvailable:   23012345 kB"; no such line (not Linux): nothing is known to be free.
        var line = File.Exists("/proc/meminfo") ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal)) : null;
        return line is not null && long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture, out var kb)
            ? kb << 10 : 0;
    }

    private bool AlmostFull(string dir)
    {
        try
        {
            return Directory.Exists(dir) && FreeBytes(dir) < 16L << 20;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Whether a failure's text says a disk filled up (PostgreSQL, pgBackRest and .NET all say ENOSPC's words).</summary>
    private static bool IsOutOfSpace(string text) =>
        text.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
        || text.Contains("could not extend file", StringComparison.OrdinalIgnoreCase)
        || text.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase);

    private async Task ArchiveUpToNowAsync(CancellationToken cancellationToken)
    {
        string segment;
        await using (var command = admin.CreateCommand(
            "SELECT txid_current(); SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal()"))
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            segment = reader.GetString(0);
        }
        var watch = Stopwatch.StartNew();
        while (true)
        {
            await using var command = admin.CreateCommand("SELECT coalesce(last_archived_wal >= $1, false), last_failed_wal FROM pg_stat_archiver");
            command.Parameters.AddWithValue(segment);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            if (reader.GetBoolean(0))
            {
                return;
            }
            if (watch.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new SnapshotException(SnapshotErrorKind.Unavailable,
                    $"WAL segment {segment} was not archived within 60 s (last failure: {(reader.IsDBNull(1) ? "none" : reader.GetString(1))}); " +
                    "check pgBackRest with 'loomworks backup info'");
            }
            await Task.Delay(20, cancellationToken);
        }
    }

    private async Task<NpgsqlLogSequenceNumber> CurrentLsnAsync(CancellationToken cancellationToken)
    {
        await using var command = admin.CreateCommand("SELECT pg_current_wal_lsn()");
        return (NpgsqlLogSequenceNumber)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task<bool> DatabaseExistsAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = admin.CreateCommand("SELECT 1 FROM pg_database WHERE datname = $1");
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string Shorten(string value, int length = 64) => value.Length > length ? value[..length] + "…" : value;

    private string Describe(Exception e, string? scratch)
    {
        var root = scratch is null ? ScratchRoot : Path.GetDirectoryName(scratch)!;
        var advice = root == MemoryRoot
            ? "Free some memory or set loomworks_restore_in_memory to False"
            : "Free some space or point loomworks_restore_scratch_dir at a larger disk";
        var text = e switch
        {
            SnapshotException or PgBackRestException => e.Message,
            OperationCanceledException => "cancelled; rolled back, the tenant is unchanged",
            _ => $"{e.GetType().Name}: {e.Message}",
        };
        // pgBackRest reports a bare write error; a disk nearly full at the moment of failure names the cause.
        return IsOutOfSpace(text) || AlmostFull(root) || AlmostFull(dataDir)
            ? $"the disk ran out of space during the restore (no space left on device; scratch folder {root}, data in " +
              $"{dataDir}); rolled back, the tenant keeps its current data. {advice}. Detail: {Shorten(text, 400)}"
            : text;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    /// <summary>
    /// Nice 19 for the process and its scheduling group, on the low-priority CPUs; false when the group's change was refused
    /// (retried later).
    /// </summary>
    private static bool Lower(int pid)
    {
        if (!CommandRunner.LowerSessionGroup(pid))
        {
            return false;
        }
        _ = SetPriority(0, pid, 19);
        _ = LowPriorityCpus.Restrict(pid);
        return true;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, int who, int priority);
}
