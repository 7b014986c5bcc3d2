using System.Diagnostics;
using System.Net.Sockets;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>The scratch cluster: a throwaway PostgreSQL restored from the backup and replayed to the target.</summary>
public sealed partial class TenantRestore
{
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
    /// its own socket, never archiving. Nothing of it survives a crash (the copy is always rebuilt from the backup, and a
    /// failed job deletes it), so it never syncs to disk, writes no full-page images and pushes checkpoints out of the way
    /// of replay. Memory for replay is sized from what the machine has free (<see cref="RecoveryMemory"/>). Hot standby
    /// stays on: replay pauses at the target only with it, and pg_dump reads the paused copy.
    /// </summary>
    internal static IReadOnlyList<string> ScratchSettings(string run, int port, long memoryAvailable)
    {
        var memory = RecoveryMemory.For(memoryAvailable);
        return
        [
            $"-p {port}", $"-k {run}", "-c listen_addresses=''", "-c archive_mode=off", "-c archive_command=/bin/false",
            "-c logging_collector=off", "-c autovacuum=off", "-c fsync=off", "-c full_page_writes=off",
            "-c synchronous_commit=off", "-c max_wal_size=64GB", "-c checkpoint_timeout=1d",
            $"-c shared_buffers={memory.SharedBuffersMb}MB", $"-c maintenance_work_mem={memory.MaintenanceWorkMemMb}MB",
            $"-c wal_decode_buffer_size={memory.WalDecodeBufferKb}kB", "-c recovery_prefetch=try",
            "-c maintenance_io_concurrency=64", "-c effective_io_concurrency=64", "-c hot_standby=on",
            "-c log_checkpoints=on", "-c log_startup_progress_interval=10s",
        ];
    }

    private async Task StartScratchAsync(string scratch, string pgData, string run, int port, RestorePriority priority,
        CancellationToken cancellationToken)
    {
        var (program, arguments) = priority.Wrap(binaries.Value["pg_ctl"],
            ["start", "-D", pgData, "-l", Path.Combine(scratch, "log", "postgresql.log"), "-W", "-s",
             "-o", string.Join(' ', ScratchSettings(run, port, MemoryAvailable()))]);
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
    /// promotion's checkpoint, a full-page image of it into WAL and the page itself.
    /// </remarks>
    private async Task<bool> WaitForTargetAsync(long job, string scratch, string pgData, string run, int port, string database,
        CancellationToken cancellationToken)
    {
        var endpoint = new PostgresEndpoint(run, port, EmbeddedCluster.Superuser, null);
        var log = Path.Combine(scratch, "log", "postgresql.log");
        var watch = Stopwatch.StartNew();
        // One connection, kept: a connection per poll is a backend forked and torn down fifty times a second beside replay.
        await using var dataSource = NpgsqlDataSource.Create(endpoint.ConnectionString("postgres") + ";Maximum Pool Size=1;Timeout=3");
        var pidFile = Path.Combine(pgData, "postmaster.pid");
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                // Until hot standby opens, every attempt would be refused ("starting up") after a fork: the status line
                // of postmaster.pid says when connections are taken.
                if (!AcceptsConnections(pidFile))
                {
                    throw new NpgsqlException("the scratch copy does not take connections yet");
                }
                await using var command = dataSource.CreateCommand(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END");
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                if (!reader.GetBoolean(0))
                {
                    return true;
                }
                if (reader.GetString(1) == "paused")
                {
                    await reader.DisposeAsync();
                    await LogReplayAsync(job, dataSource, cancellationToken);
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
                if (watch.Elapsed > TimeSpan.FromSeconds(2) && !File.Exists(pidFile))
                {
                    var lines = File.Exists(log) ? File.ReadLines(log).ToList() : [];
                    var problems = lines.Where(l =>
                        (l.Contains("FATAL", StringComparison.Ordinal) && !l.Contains("starting up", StringComparison.Ordinal))
                        || l.Contains("PANIC", StringComparison.Ordinal) || l.Contains("ERROR", StringComparison.Ordinal)).Take(5);
                    var tail = string.Join('\n', problems.Concat(lines.TakeLast(3)));
                    throw new SnapshotException(SnapshotErrorKind.Invalid,
                        tail.Contains("before configured recovery target", StringComparison.Ordinal)
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

    /// <summary>
    /// Logs what replay did, beside the phase timings: the WAL it replayed and what its prefetcher found
    /// (pg_stat_recovery_prefetch): blocks prefetched, already in shared buffers, or skipped as a full-page image, new or
    /// initialised block, or repeat.
    /// </summary>
    private async Task LogReplayAsync(long job, NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("""
                SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), (SELECT redo_lsn FROM pg_control_checkpoint()))::bigint,
                       prefetch, hit, skip_fpw, skip_init, skip_new, skip_rep
                FROM pg_stat_recovery_prefetch
                """);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                logger.LogInformation("Restore job {Job}: replayed {WalMegabytes} MB of WAL; recovery prefetch: {Prefetch} blocks " +
                    "prefetched, {Hit} in shared buffers, skipped {SkipFpw} as full-page images, {SkipInit} initialised, " +
                    "{SkipNew} new, {SkipRepeat} repeats", job, reader.GetInt64(0) >> 20, reader.GetInt64(1), reader.GetInt64(2),
                    reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6));
            }
        }
        catch (NpgsqlException e)
        {
            logger.LogDebug(e, "Restore job {Job}: replay's statistics could not be read", job);
        }
    }

    /// <summary>Whether the postmaster.pid's status line says the copy takes connections ("standby" or "ready").</summary>
    private static bool AcceptsConnections(string pidFile)
    {
        try
        {
            return File.ReadLines(pidFile).ElementAtOrDefault(7)?.Trim() is "standby" or "ready";
        }
        catch (IOException)
        {
            return false;
        }
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
        ScratchProcesses.KillHelpersOf(scratch);
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

    private async Task StopScratchAsync(string pgData)
    {
        // Immediate: the copy is thrown away, so there is nothing to flush.
        await CommandRunner.RunAsync(binaries.Value["pg_ctl"], ["stop", "-D", pgData, "-m", "immediate", "-w", "-t", "60"],
            CommandRunner.ServerUser, TimeSpan.FromSeconds(90), CancellationToken.None);
        var pidFile = Path.Combine(pgData, "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid)
            && Directory.Exists($"/proc/{pid}"))
        {
            _ = Native.Kill(pid, 9);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
