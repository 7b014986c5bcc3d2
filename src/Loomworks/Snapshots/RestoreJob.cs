using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>A restore of one tenant as loomworks_mgmt records it: its target, the step reached and its progress.</summary>
public sealed record RestoreJob(
    long Id,
    long TenantId,
    string SourceDatabase,
    string TargetDatabase,
    string? AsSubdomain,
    string TargetType,
    string Target,
    long? SnapshotId,
    string? BackupSet,
    bool IncludeOnly,
    string State,
    int Step,
    string StepName,
    int Progress,
    string? Error,
    string? ScratchDir,
    string NewDatabase,
    string? AsideDatabase,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt,
    DateTimeOffset? AsideDroppedAt);

/// <summary>The persisted steps of a restore, in order; a crash after step N is resumed or rolled back from N.</summary>
public static class RestoreSteps
{
    public const int Queued = 0;
    public const int FilesRestored = 1;
    public const int TargetReached = 2;
    public const int Dumped = 3;
    public const int Loaded = 4;
    public const int Swapped = 5;
    public const int Done = 6;

    public static readonly IReadOnlyList<string> Names =
        ["queued", "files_restored", "target_reached", "dumped", "loaded", "swapped", "done"];

    /// <summary>Progress in percent once each step is done.</summary>
    public static readonly IReadOnlyList<int> Progress = [0, 25, 50, 65, 95, 99, 100];
}

/// <summary>Reads and writes restore jobs in loomworks_mgmt.</summary>
public sealed class RestoreJobStore(PooledDatabase management)
{
    /// <summary>The management database the jobs are kept in.</summary>
    public string DatabaseName { get; } = management.Name;

    private const string Columns = """
        id, tenant_id, source_database, target_database, as_subdomain, target_type, target, snapshot_id, backup_set,
        include_only, state, step, step_name, progress, error, scratch_dir, new_database, aside_database, created_at,
        updated_at, finished_at, aside_dropped_at
        """;

    public async Task<RestoreJob?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await using var command = management.CreateCommand($"SELECT {Columns} FROM loomworks_restore_job WHERE id = $1");
        command.Parameters.AddWithValue(id);
        return (await ReadAllAsync(command, cancellationToken)).FirstOrDefault();
    }

    /// <summary>Jobs a process was working on (running or undoing), oldest first.</summary>
    public async Task<IReadOnlyList<RestoreJob>> UnfinishedAsync(CancellationToken cancellationToken)
    {
        await using var command = management.CreateCommand(
            $"SELECT {Columns} FROM loomworks_restore_job WHERE state IN ('running', 'undoing') ORDER BY id");
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>Finished restores whose replaced database is still kept aside.</summary>
    public async Task<IReadOnlyList<RestoreJob>> WithAsideAsync(CancellationToken cancellationToken)
    {
        await using var command = management.CreateCommand($"""
            SELECT {Columns} FROM loomworks_restore_job
            WHERE state = 'done' AND aside_database IS NOT NULL AND aside_dropped_at IS NULL ORDER BY id
            """);
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>Creates a running job; the partial unique index refuses a second one for the same tenant.</summary>
    public async Task<RestoreJob> CreateAsync(long tenantId, string sourceDatabase, string targetDatabase, string? asSubdomain,
        string targetType, string target, long? snapshotId, string backupSet, CancellationToken cancellationToken)
    {
        await using var connection = await management.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var insert = new NpgsqlCommand("""
            INSERT INTO loomworks_restore_job (tenant_id, source_database, target_database, as_subdomain, target_type, target,
                snapshot_id, backup_set, new_database)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '')
            RETURNING id
            """, connection, transaction);
        insert.Parameters.AddWithValue(tenantId);
        insert.Parameters.AddWithValue(sourceDatabase);
        insert.Parameters.AddWithValue(targetDatabase);
        insert.Parameters.AddWithValue((object?)asSubdomain ?? DBNull.Value);
        insert.Parameters.AddWithValue(targetType);
        insert.Parameters.AddWithValue(target);
        insert.Parameters.AddWithValue((object?)snapshotId ?? DBNull.Value);
        insert.Parameters.AddWithValue(backupSet);
        var id = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
        // Names derived from the job id: short, unique, and recognisable after a crash.
        await using var names = new NpgsqlCommand("""
            UPDATE loomworks_restore_job SET new_database = 'lwrestore_' || id,
                aside_database = CASE WHEN as_subdomain IS NULL THEN 'lwaside_' || id END
            WHERE id = $1
            """, connection, transaction);
        names.Parameters.AddWithValue(id);
        await names.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (await GetAsync(id, cancellationToken))!;
    }

    public async Task SetStepAsync(long id, int step, CancellationToken cancellationToken)
    {
        await using var command = management.CreateCommand("""
            UPDATE loomworks_restore_job SET step = $2, step_name = $3, progress = $4, updated_at = now(),
                state = CASE WHEN $2 = 6 THEN 'done' ELSE state END,
                finished_at = CASE WHEN $2 = 6 THEN now() ELSE finished_at END
            WHERE id = $1
            """);
        command.Parameters.AddWithValue(id);
        command.Parameters.AddWithValue(step);
        command.Parameters.AddWithValue(RestoreSteps.Names[step]);
        command.Parameters.AddWithValue(RestoreSteps.Progress[step]);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public Task SetProgressAsync(long id, int progress, CancellationToken cancellationToken) =>
        UpdateAsync(id, "progress = $2", cancellationToken, progress);

    public Task SetScratchAsync(long id, string? scratchDir, CancellationToken cancellationToken) =>
        UpdateAsync(id, "scratch_dir = $2", cancellationToken, (object?)scratchDir ?? DBNull.Value);

    public Task SetIncludeOnlyAsync(long id, bool includeOnly, CancellationToken cancellationToken) =>
        UpdateAsync(id, "include_only = $2", cancellationToken, includeOnly);

    public Task FailAsync(long id, string error, CancellationToken cancellationToken) =>
        UpdateAsync(id, "state = 'failed', error = $2, finished_at = now()", cancellationToken, error);

    public Task SetStateAsync(long id, string state, CancellationToken cancellationToken) =>
        UpdateAsync(id, "state = $2", cancellationToken, state);

    public Task MarkUndoneAsync(long id, CancellationToken cancellationToken) =>
        UpdateAsync(id, "state = 'undone', aside_dropped_at = now()", cancellationToken);

    public Task MarkAsideDroppedAsync(long id, CancellationToken cancellationToken) =>
        UpdateAsync(id, "aside_dropped_at = now()", cancellationToken);

    /// <summary>
    /// Takes the job's advisory lock on a connection held for the work; false when a live process holds it. A process
    /// that dies (kill -9) loses its connection and so its lock, which is how an orphaned job is recognised.
    /// </summary>
    public async Task<NpgsqlConnection?> TryLockAsync(long id, CancellationToken cancellationToken)
    {
        var connection = await management.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock($1, $2)", connection);
        command.Parameters.AddWithValue(LockClass);
        command.Parameters.AddWithValue((int)id);
        if ((bool)(await command.ExecuteScalarAsync(cancellationToken))!)
        {
            return connection;
        }
        await connection.DisposeAsync();
        return null;
    }

    /// <summary>Releases a lock taken by <see cref="TryLockAsync"/> and returns the connection.</summary>
    public static async Task UnlockAsync(NpgsqlConnection connection, long id)
    {
        try
        {
            await using var command = new NpgsqlCommand("SELECT pg_advisory_unlock($1, $2)", connection);
            command.Parameters.AddWithValue(LockClass);
            command.Parameters.AddWithValue((int)id);
            await command.ExecuteNonQueryAsync();
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>Arbitrary but fixed: the advisory lock class of restore jobs ("LWRJ").</summary>
    private const int LockClass = 0x4C57524A;

    private async Task UpdateAsync(long id, string assignments, CancellationToken cancellationToken, params object[] values)
    {
        // assignments are constants of this class, never input.
        await using var command = management.CreateCommand(
            $"UPDATE loomworks_restore_job SET {assignments}, updated_at = now() WHERE id = $1");
        command.Parameters.AddWithValue(id);
        foreach (var value in values)
        {
            command.Parameters.AddWithValue(value);
        }
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<List<RestoreJob>> ReadAllAsync(PooledCommand command, CancellationToken cancellationToken)
    {
        await using var r = await command.ExecuteReaderAsync(cancellationToken);
        var jobs = new List<RestoreJob>();
        while (await r.ReadAsync(cancellationToken))
        {
            jobs.Add(new RestoreJob(
                r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4),
                r.GetString(5), r.GetString(6), r.IsDBNull(7) ? null : r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8),
                r.GetBoolean(9), r.GetString(10), r.GetInt32(11), r.GetString(12), r.GetInt32(13),
                r.IsDBNull(14) ? null : r.GetString(14), r.IsDBNull(15) ? null : r.GetString(15), r.GetString(16),
                r.IsDBNull(17) ? null : r.GetString(17), r.GetFieldValue<DateTimeOffset>(18), r.GetFieldValue<DateTimeOffset>(19),
                r.IsDBNull(20) ? null : r.GetFieldValue<DateTimeOffset>(20), r.IsDBNull(21) ? null : r.GetFieldValue<DateTimeOffset>(21)));
        }
        return jobs;
    }
}
