using System.Diagnostics;
using System.Globalization;
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
    TenantLifecycle lifecycle,
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
    /// <summary>
    /// The restore of the server <paramref name="options"/> were bound for, bringing restored databases up to
    /// <paramref name="schema"/>.
    /// </summary>
    public TenantRestore(SnapshotService snapshots, ManagementDatabase management, TenantStore tenants, TenantLifecycle lifecycle,
        TenantDataSources dataSources, SnapshotOptions options, ILogger<TenantRestore> logger, ITenantDatabaseSetup? schema = null)
        : this(snapshots, new RestoreJobStore(management.DataSource), tenants, lifecycle, dataSources.For("postgres"), options.Endpoint,
            options.Binaries, options.DataDir, options.ScratchRoot, options.MemoryRoot, options.KeepPreRestoreHours, logger,
            dataSources.EvictAsync)
    {
        PacedBytesPerSecond = options.PacedBytesPerSecond;
        Schema = schema;
    }

    /// <summary>Statements on whole databases of the live server (existence, renames, drops, grants).</summary>
    private readonly DatabaseOperations databases = new(admin, evictDatabase);

    /// <summary>Set by the tests: called after each persisted step; throwing from it simulates a crash there.</summary>
    internal Action<int>? AfterStep { get; set; }

    /// <summary>The load's rate while other tenants work (loomworks_restore_paced_mb_per_s); 0: never paced.</summary>
    public long PacedBytesPerSecond { get; private init; } = 20L << 20;

    /// <summary>How long the last load waited to keep its pace beside other tenants' work (see <see cref="LoadPace"/>).</summary>
    internal TimeSpan LastLoadPacedFor { get; private set; }

    /// <summary>Free bytes where scratch copies go; replaceable by the tests to simulate a full disk.</summary>
    internal Func<string, long> FreeBytes { get; set; } = path => new DriveInfo(path).AvailableFreeSpace;

    /// <summary>The tenant schema whose missing migrations a restored database gets before the swap; none: left as restored.</summary>
    public ITenantDatabaseSetup? Schema { get; internal set; }

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
            if (await databases.ExistsAsync(targetDatabase, cancellationToken))
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
            await using var command = admin.CreateCommand(
                "SELECT coalesce(last_archived_wal >= $1, false), last_failed_wal FROM pg_stat_archiver");
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
                    $"WAL segment {segment} was not archived within 60 s " +
                    $"(last failure: {(reader.IsDBNull(1) ? "none" : reader.GetString(1))}); " +
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

    private static string Shorten(string value, int length = 64) => value.Length > length ? value[..length] + "…" : value;
}
