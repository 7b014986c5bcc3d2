using System.Diagnostics;
using System.Threading.Channels;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Snapshots;

/// <summary>What went wrong with a snapshot or restore request, so each interface can answer in its own terms.</summary>
public enum SnapshotErrorKind
{
    Invalid,
    NotFound,
    Conflict,
    Unavailable,
}

/// <summary>A refused snapshot or restore request; the message names the problem and nothing was changed.</summary>
public sealed class SnapshotException(SnapshotErrorKind kind, string message) : Exception(message)
{
    public SnapshotErrorKind Kind { get; } = kind;
}

/// <summary>A snapshot as loomworks_mgmt records it (the seed's fields).</summary>
public sealed record Snapshot(
    long Id,
    long TenantId,
    string Name,
    DateTimeOffset CreatedAt,
    string State,
    string WalPosition,
    string WalFile,
    string RestorePoint,
    string? BaseBackupId,
    string SnapshotType,
    long? SizeBytes,
    DateTimeOffset ExpiresAt);

/// <summary>Snapshot kinds: automatic, asked for by a person, or taken before an AI session's first change.</summary>
public static class SnapshotTypes
{
    public const string Auto = "auto";
    public const string Manual = "manual";
    public const string PreAi = "pre_ai";
    public static readonly IReadOnlyList<string> All = [Auto, Manual, PreAi];
}

/// <summary>
/// Snapshots of tenants: a named restore point in the shared WAL, its LSN and segment, recorded pending; a WAL switch
/// in the background gets the segment archived at once, and the snapshot is ready when pg_stat_archiver shows it.
/// </summary>
public sealed class SnapshotService(ManagementDatabase management, TenantStore tenants, PgBackRest backRest, int retentionDays)
{
    /// <summary>A pending snapshot whose segment is still not archived this long after it was taken is marked failed.</summary>
    public SnapshotService(ManagementDatabase management, TenantStore tenants, PgBackRest backRest, SnapshotOptions options)
        : this(management, tenants, backRest, options.BackRest.RetentionDays)
    {
    }

    public static readonly TimeSpan PendingLimit = TimeSpan.FromMinutes(15);

    // One slot: requests arriving while a switch is under way coalesce into the next one, which covers them all.
    private readonly Channel<bool> _wake =
        Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Lock _completerGate = new();
    private Task? _completer;

    private const string Columns = """
        id, tenant_id, name, created_at, state, wal_position::text, wal_file, restore_point, base_backup_id,
        snapshot_type, size_bytes, expires_at
        """;

    public const int MaxNameLength = 200;

    public PgBackRest BackRest => backRest;

    /// <summary>Takes a snapshot and returns it (pending until its WAL segment is archived).</summary>
    public async Task<Snapshot> CreateAsync(string subdomain, string? name, string type, CancellationToken cancellationToken)
    {
        if (!SnapshotTypes.All.Contains(type))
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"'{type}' is not a snapshot type ({string.Join(", ", SnapshotTypes.All)})");
        }
        var tenant = await RequireTenantAsync(subdomain, cancellationToken);
        name = ValidateName(name) ?? $"{type} {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss}Z";
        if (!backRest.IsConfigured)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable, PgBackRest.IsInstalled
                ? $"pgBackRest is not set up for this server (no stanza in {backRest.Options.RepositoryPath}); "
                    + "start the server once to set it up"
                : "pgBackRest is not installed; snapshots need it: apt-get install pgbackrest");
        }
        var restorePoint = "loomworks-" + Guid.NewGuid().ToString("N");
        // One statement, one commit: the request path only records the point. The LSN pg_create_restore_point returns
        // is the point itself (pg_current_wal_lsn() can be behind it). The WAL switch and the archive wait happen in
        // the background (CompletePendingAsync); a process that dies first leaves a pending row the next start completes.
        await using var insert = management.DataSource.CreateCommand($"""
            WITH p AS (SELECT pg_create_restore_point($1) AS lsn)
            INSERT INTO loomworks_snapshot (tenant_id, name, wal_position, wal_file, restore_point, base_backup_id,
                snapshot_type, size_bytes, expires_at)
            SELECT $2, $3, p.lsn, pg_walfile_name(p.lsn), $1,
                (SELECT label FROM loomworks_backup_set ORDER BY stopped_at DESC LIMIT 1),
                $4, pg_database_size($5), now() + make_interval(days => $6)
            FROM p
            RETURNING {Columns}
            """);
        insert.Parameters.AddWithValue(restorePoint);
        insert.Parameters.AddWithValue(tenant.Id);
        insert.Parameters.AddWithValue(name);
        insert.Parameters.AddWithValue(type);
        insert.Parameters.AddWithValue(tenant.DatabaseName);
        insert.Parameters.AddWithValue(retentionDays);
        Snapshot snapshot;
        await using (var inserted = await insert.ExecuteReaderAsync(cancellationToken))
        {
            await inserted.ReadAsync(cancellationToken);
            snapshot = Read(inserted);
        }
        CrashPoint.Reached("snapshots:snapshot_recorded");
        RequestCompletion();
        return snapshot;
    }

    /// <summary>Wakes the background completer (started on first use): it switches WAL once for every pending snapshot.</summary>
    public void RequestCompletion()
    {
        lock (_completerGate)
        {
            _completer ??= Task.Run(CompleteInBackgroundAsync);
        }
        _wake.Writer.TryWrite(true);
    }

    private async Task CompleteInBackgroundAsync()
    {
        while (await _wake.Reader.WaitToReadAsync())
        {
            _wake.Reader.TryRead(out _);
            try
            {
                await CompletePendingAsync(TimeSpan.FromSeconds(60), CancellationToken.None);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                // The snapshots stay pending: archive_timeout archives the segment anyway, the next request or start
                // retries the switch, and RefreshStatesAsync fails those still pending after PendingLimit.
                Trace.TraceWarning($"Completing pending snapshots failed: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Switches WAL if a pending snapshot's segment is still being written, then waits (up to <paramref name="timeout"/>)
    /// until every pending segment is archived and marks those snapshots ready. Safe to run at any time and repeatedly.
    /// </summary>
    public async Task CompletePendingAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        string? newest;
        var mustSwitch = false;
        await using (var command = management.DataSource.CreateCommand("""
            SELECT max(wal_file), coalesce(bool_or(wal_file >= pg_walfile_name(pg_current_wal_insert_lsn())), false)
            FROM loomworks_snapshot WHERE state = 'pending'
            """))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            newest = reader.IsDBNull(0) ? null : reader.GetString(0);
            mustSwitch = reader.GetBoolean(1);
        }
        if (newest is null)
        {
            return;
        }
        if (mustSwitch)
        {
            await using var switchWal = management.DataSource.CreateCommand("SELECT pg_switch_wal()");
            await switchWal.ExecuteNonQueryAsync(cancellationToken);
        }
        var watch = Stopwatch.StartNew();
        while (true)
        {
            await using var poll = management.DataSource.CreateCommand(
                "SELECT coalesce(last_archived_wal >= $1, false) FROM pg_stat_archiver");
            poll.Parameters.AddWithValue(newest);
            if ((bool)(await poll.ExecuteScalarAsync(cancellationToken))! || watch.Elapsed > timeout)
            {
                break;
            }
            await Task.Delay(20, cancellationToken);
        }
        await RefreshStatesAsync(cancellationToken);
    }

    /// <summary>Waits until the snapshot's segment is archived; returns it ready, or still pending after the timeout.</summary>
    public async Task<Snapshot> WaitReadyAsync(Snapshot snapshot, TimeSpan timeout, CancellationToken cancellationToken)
    {
        RequestCompletion();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            await RefreshStatesAsync(cancellationToken);
            var current = await GetAsync(snapshot.Id, cancellationToken) ?? snapshot;
            if (current.State != "pending" || watch.Elapsed > timeout)
            {
                return current;
            }
            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>Marks pending snapshots ready once their segment is archived, and snapshots past expires_at expired.</summary>
    public async Task RefreshStatesAsync(CancellationToken cancellationToken)
    {
        // WAL file names of one timeline sort in WAL order, so a text comparison says whether a segment is archived.
        // PendingLimit is a constant of this class, spliced so the statements need no parameters (several in one command).
        await using var command = management.DataSource.CreateCommand($$"""
            UPDATE loomworks_snapshot SET state = 'ready'
            WHERE state = 'pending'
              AND wal_file <= (SELECT last_archived_wal FROM pg_stat_archiver WHERE last_archived_wal ~ '^[0-9A-F]{24}$');
            UPDATE loomworks_snapshot SET state = 'failed'
             WHERE state = 'pending' AND created_at < now() - interval '{{(int)PendingLimit.TotalMinutes}} minutes';
            UPDATE loomworks_snapshot SET state = 'expired' WHERE state IN ('pending', 'ready') AND expires_at < now();
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<Snapshot>> ListAsync(string subdomain, CancellationToken cancellationToken)
    {
        var tenant = await RequireTenantAsync(subdomain, cancellationToken);
        await RefreshStatesAsync(cancellationToken);
        await using var command = management.DataSource.CreateCommand(
            $"SELECT {Columns} FROM loomworks_snapshot WHERE tenant_id = $1 ORDER BY created_at, id");
        command.Parameters.AddWithValue(tenant.Id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var list = new List<Snapshot>();
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(Read(reader));
        }
        return list;
    }

    public async Task<Snapshot?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await using var command = management.DataSource.CreateCommand($"SELECT {Columns} FROM loomworks_snapshot WHERE id = $1");
        command.Parameters.AddWithValue(id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    /// <summary>The snapshot <paramref name="id"/> of the tenant, refusing one that belongs to another tenant.</summary>
    public async Task<Snapshot> RequireSnapshotAsync(Tenant tenant, long id, CancellationToken cancellationToken)
    {
        var snapshot = await GetAsync(id, cancellationToken);
        if (snapshot is null || snapshot.TenantId != tenant.Id)
        {
            // The same answer for another tenant's snapshot: its existence is none of this tenant's business.
            throw new SnapshotException(SnapshotErrorKind.NotFound, $"tenant '{tenant.Subdomain}' has no snapshot {id}");
        }
        return snapshot;
    }

    /// <summary>Forgets a snapshot (the WAL stays in the archive until its backups expire).</summary>
    public async Task DeleteAsync(string subdomain, long id, CancellationToken cancellationToken)
    {
        var tenant = await RequireTenantAsync(subdomain, cancellationToken);
        await RequireSnapshotAsync(tenant, id, cancellationToken);
        await using var command = management.DataSource.CreateCommand("DELETE FROM loomworks_snapshot WHERE id = $1 AND tenant_id = $2");
        command.Parameters.AddWithValue(id);
        command.Parameters.AddWithValue(tenant.Id);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Deletes expired snapshots that no remaining backup can reach any more.</summary>
    public async Task<int> PruneExpiredAsync(CancellationToken cancellationToken)
    {
        await RefreshStatesAsync(cancellationToken);
        await using var command = management.DataSource.CreateCommand("""
            DELETE FROM loomworks_snapshot
            WHERE state = 'expired'
              AND wal_position < coalesce((SELECT min(stop_lsn) FROM loomworks_backup_set), 'FFFFFFFF/FFFFFFFF'::pg_lsn)
            """);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Mirrors pgBackRest's backup list into loomworks_mgmt, so snapshots can name their base backup cheaply.</summary>
    public async Task<IReadOnlyList<BackupSet>> SyncBackupSetsAsync(CancellationToken cancellationToken)
    {
        var sets = await backRest.InfoAsync(cancellationToken);
        await using var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var clear = new NpgsqlCommand("DELETE FROM loomworks_backup_set", connection, transaction))
        {
            await clear.ExecuteNonQueryAsync(cancellationToken);
        }
        foreach (var set in sets)
        {
            await using var insert = new NpgsqlCommand("""
                INSERT INTO loomworks_backup_set (label, backup_type, started_at, stopped_at, start_lsn, stop_lsn, size_bytes)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                """, connection, transaction);
            insert.Parameters.AddWithValue(set.Label);
            insert.Parameters.AddWithValue(set.Type);
            insert.Parameters.AddWithValue(set.Started);
            insert.Parameters.AddWithValue(set.Stopped);
            insert.Parameters.Add(new NpgsqlParameter { Value = set.StartLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            insert.Parameters.Add(new NpgsqlParameter { Value = set.StopLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            insert.Parameters.AddWithValue(set.SizeBytes);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
        return sets;
    }

    /// <summary>Runs a backup and records it.</summary>
    public async Task<BackupSet> BackupAsync(string type, CancellationToken cancellationToken)
    {
        var set = await backRest.BackupAsync(type, cancellationToken);
        await SyncBackupSetsAsync(cancellationToken);
        return set;
    }

    public async Task<Tenant> RequireTenantAsync(string subdomain, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(subdomain) || subdomain.Length > 63)
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid, "the tenant must be named by its subdomain (1 to 63 characters)");
        }
        return await tenants.FindBySubdomainAsync(subdomain, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.NotFound, $"there is no tenant '{subdomain}'");
    }

    private static string? ValidateName(string? name)
    {
        if (name is null)
        {
            return null;
        }
        name = name.Trim();
        if (name.Length == 0)
        {
            return null;
        }
        if (name.Length > MaxNameLength || name.Any(char.IsControl))
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"a snapshot name has at most {MaxNameLength} characters and no control characters");
        }
        return name;
    }

    private static Snapshot Read(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetFieldValue<DateTimeOffset>(3), r.GetString(4), r.GetString(5),
        r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), r.GetString(9),
        r.IsDBNull(10) ? null : r.GetInt64(10), r.GetFieldValue<DateTimeOffset>(11));
}
