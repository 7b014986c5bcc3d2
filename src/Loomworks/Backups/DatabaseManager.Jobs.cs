using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>The job of each operation: its persisted steps, its advisory lock, and recovery after a crash.</summary>
public sealed partial class DatabaseManager
{
    /// <summary>Advisory-lock class of running jobs: a job whose lock is free has lost its process.</summary>
    private const int JobLockClass = 0x4C57_4442; // "LWDB"

    /// <summary>
    /// Finishes or rolls back the jobs of processes that died: restore and duplicate are rolled back (their input is
    /// gone), drop and rename are finished. Jobs whose process is alive (its advisory lock held) are left alone.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken = default)
    {
        var running = new List<(long Id, string Kind, string Name, string? Source)>();
        await using (var command = management.DataSource.CreateCommand(
            "SELECT id, kind, database_name, source_name FROM loomworks_db_job WHERE state = 'running' ORDER BY id"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                running.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
        }
        var recovered = 0;
        foreach (var (id, kind, name, source) in running)
        {
            await using var job = await Job.TryAdoptAsync(this, id, cancellationToken);
            if (job is null)
            {
                continue;
            }
            logger.LogWarning("Recovering interrupted {Kind} of database {Database} (job {Id})", kind, name, id);
            switch (kind)
            {
                case "restore" or "duplicate":
                    await RollBackCreationAsync(id, name, "interrupted; rolled back on recovery", cancellationToken);
                    break;
                case "drop":
                    await FinishDropAsync(job, name, cancellationToken);
                    break;
                case "rename":
                    await FinishRenameAsync(job, source!, name, cancellationToken);
                    break;
            }
            recovered++;
        }
        return recovered;
    }

    /// <summary>Removes all a restore or duplicate made: the database, its files (final and staging), its tenant row.</summary>
    private async Task RollBackCreationAsync(long jobId, string name, string reason, CancellationToken cancellationToken)
    {
        await dataSources.EvictAsync(name);
        await databases.DropAsync(name, cancellationToken);
        await tenants.DropRoleAsync(name, cancellationToken);
        var staging = fileStore.StagingFolder(name);
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        fileStore.Drop(name);
        await using var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TenantRegistration.UnregisterAsync(connection, transaction, name, TenantStates.Restoring, cancellationToken);
        await TenantRegistration.UnregisterAsync(connection, transaction, name, TenantStates.Provisioning, cancellationToken);
        await using (var command = new NpgsqlCommand(
            "UPDATE loomworks_db_job SET state = 'rolled_back', error = $2, updated_at = now() WHERE id = $1", connection, transaction))
        {
            command.Parameters.AddWithValue(jobId);
            command.Parameters.AddWithValue(reason);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    private void Reached(string kind, string step)
    {
        var point = $"{kind}:{step}";
        options.StepHook?.Invoke(point);
        CrashPoint.Reached("db:" + point);
    }

    private async Task<Job> BeginJobAsync(string kind, string name, string? source, string? reserveState,
        CancellationToken cancellationToken)
    {
        var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            long id;
            await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
            {
                await using (var insert = new NpgsqlCommand(
                    "INSERT INTO loomworks_db_job (kind, database_name, source_name, step) VALUES ($1, $2, $3, 'started') RETURNING id",
                    connection, transaction))
                {
                    insert.Parameters.AddWithValue(kind);
                    insert.Parameters.AddWithValue(name);
                    insert.Parameters.Add(new NpgsqlParameter
                    {
                        Value = (object?)source ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text,
                    });
                    try
                    {
                        id = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
                    }
                    catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
                    {
                        throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists,
                            $"another operation on database '{name}' is in progress");
                    }
                }
                if (reserveState is not null)
                {
                    await TenantRegistration.ReserveAsync(connection, transaction, name, reserveState, cancellationToken);
                }
                await transaction.CommitAsync(cancellationToken);
            }
            var job = new Job(this, connection, id, kind, name);
            await job.LockAsync(cancellationToken);
            Reached(kind, "started");
            return job;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>A running job: its row, and a session holding its advisory lock for as long as this process works on it.</summary>
    private sealed class Job(DatabaseManager manager, NpgsqlConnection connection, long id, string kind, string name) : IAsyncDisposable
    {
        public long Id => id;

        public static async Task<Job?> TryAdoptAsync(DatabaseManager manager, long id, CancellationToken cancellationToken)
        {
            var connection = await manager.Management.DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(
                "SELECT pg_try_advisory_lock($1, $2::int), kind, database_name FROM loomworks_db_job WHERE id = $2 AND state = 'running'",
                connection);
            command.Parameters.AddWithValue(JobLockClass);
            command.Parameters.AddWithValue((int)id);
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                if (await reader.ReadAsync(cancellationToken) && reader.GetBoolean(0))
                {
                    return new Job(manager, connection, id, reader.GetString(1), reader.GetString(2));
                }
            }
            await connection.DisposeAsync();
            return null;
        }

        public async Task LockAsync(CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand("SELECT pg_advisory_lock($1, $2::int)", connection);
            command.Parameters.AddWithValue(JobLockClass);
            command.Parameters.AddWithValue((int)id);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        public async Task StepAsync(string step, CancellationToken cancellationToken)
        {
            await using (var command = new NpgsqlCommand(
                "UPDATE loomworks_db_job SET step = $2, updated_at = now() WHERE id = $1", connection))
            {
                command.Parameters.AddWithValue(id);
                command.Parameters.AddWithValue(step);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            manager.Reached(kind, step);
        }

        /// <summary>
        /// Marks the job done and, in the same transaction, the tenant row: activated, or removed when <paramref name="activeState"/> is
        /// null.
        /// </summary>
        public async Task FinishAsync(string? activeState, CancellationToken cancellationToken)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (activeState is not null)
            {
                await TenantRegistration.SetStateAsync(connection, transaction, name, activeState, cancellationToken);
            }
            else
            {
                await TenantRegistration.UnregisterAsync(connection, transaction, name, null, cancellationToken);
            }
            await DoneAsync(transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        public async Task FinishRenameAsync(string oldName, string newName, CancellationToken cancellationToken)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await TenantRegistration.RenameAsync(connection, transaction, oldName, newName, cancellationToken);
            await DoneAsync(transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        private async Task DoneAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand(
                "UPDATE loomworks_db_job SET state = 'done', step = 'done', updated_at = now() WHERE id = $1", connection, transaction);
            command.Parameters.AddWithValue(id);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            // Closing the session releases the advisory lock.
            await connection.DisposeAsync();
        }
    }
}

/// <summary>Thrown by the in-process test hook to stop an operation where a crash would, skipping its clean-up.</summary>
internal sealed class CrashForTestingException(string point) : Exception($"simulated crash at {point}");
