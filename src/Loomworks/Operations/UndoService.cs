using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// Undoes operations of one tenant database from their captured changes: one operation, a whole session (newest
/// first) or everything after a time. Each call is one transaction, so it happens entirely or not at all, and each
/// undo is itself an operation, so undoing it redoes the original.
/// </summary>
public sealed class UndoService(NpgsqlDataSource dataSource)
{
    /// <summary>Environment variable naming a step at which the process kills itself (tests of crash safety only).</summary>
    public const string CrashVariable = "LOOMWORKS_TEST_CRASH_AT";

    /// <summary>Undoes one operation; refuses (naming the later operation) when its rows changed since, unless forced.</summary>
    public async Task<UndoResult> UndoAsync(long operationId, bool force, OperationInfo? undoneBy, CancellationToken cancellationToken)
    {
        CheckId(operationId);
        return await InTransactionAsync(async transaction =>
            await UndoOneAsync(transaction, operationId, force, undoneBy, cancellationToken), cancellationToken);
    }

    /// <summary>Undoes every operation of a session that is still in effect, newest first, in one transaction.</summary>
    public async Task<IReadOnlyList<UndoResult>> UndoSessionAsync(string sessionId, bool force, OperationInfo? undoneBy,
        CancellationToken cancellationToken)
    {
        return await InTransactionAsync(transaction => UndoSessionAsync(transaction, sessionId, force, undoneBy, cancellationToken),
            cancellationToken);
    }

    /// <summary>Undoes one operation inside the caller's transaction (an RPC call's), which commits or rolls back.</summary>
    public static Task<UndoResult> UndoAsync(NpgsqlTransaction transaction, long operationId, bool force, OperationInfo? undoneBy,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        CheckId(operationId);
        return UndoOneAsync(transaction, operationId, force, undoneBy, cancellationToken);
    }

    /// <summary>Undoes a session's operations, newest first, inside the caller's transaction.</summary>
    public static async Task<IReadOnlyList<UndoResult>> UndoSessionAsync(NpgsqlTransaction transaction, string sessionId, bool force,
        OperationInfo? undoneBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (string.IsNullOrWhiteSpace(sessionId) || sessionId.Length > 200)
        {
            throw new OperationException(OperationErrorKind.BadInput, "a session id must be 1 to 200 characters");
        }
        var connection = transaction.Connection!;
        var ids = new List<long>();
        await using (var command = new NpgsqlCommand("""
            SELECT id FROM loomworks_ai_operation_log
            WHERE session_id = $1 AND state IN ('done', 'pending') AND NOT undone AND undo_of IS NULL
            ORDER BY id DESC FOR UPDATE
            """, connection))
        {
            command.Parameters.AddWithValue(sessionId);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                ids.Add(reader.GetInt64(0));
            }
        }
        if (ids.Count == 0)
        {
            throw new OperationException(OperationErrorKind.NotFound, $"session '{sessionId}' has no operations left to undo");
        }
        var results = new List<UndoResult>();
        foreach (var id in ids)
        {
            results.Add(await UndoOneAsync(transaction, id, force, undoneBy, cancellationToken));
        }
        return results;
    }

    /// <summary>
    /// Undoes every operation after <paramref name="to"/>, newest first, when the change log covers that time;
    /// otherwise refuses and points to the point-in-time restore of <paramref name="tenant"/>.
    /// </summary>
    public async Task<IReadOnlyList<UndoResult>> RewindAsync(DateTimeOffset to, bool force, string tenant, CancellationToken cancellationToken)
    {
        var restore = $"loomworks restore {tenant} --time {to.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)}";
        return await InTransactionAsync(async transaction =>
        {
            var connection = transaction.Connection!;
            long newest;
            await using (var coverage = new NpgsqlCommand("""
                SELECT covered_since,
                       (SELECT count(*) FROM loomworks_change WHERE operation_id IS NULL AND changed_at > $1),
                       (SELECT coalesce(max(id), 0) FROM loomworks_ai_operation_log)
                FROM loomworks_oplog_coverage
                """, connection))
            {
                coverage.Parameters.AddWithValue(to);
                await using var reader = await coverage.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                var coveredSince = reader.GetFieldValue<DateTimeOffset>(0);
                var outside = reader.GetInt64(1);
                if (to < coveredSince)
                {
                    throw new OperationException(OperationErrorKind.NotCovered,
                        $"the operation log only covers changes since {coveredSince.ToUniversalTime():o}, after {to.ToUniversalTime():o}; " +
                        $"restore the tenant to that time from its snapshots instead: {restore}");
                }
                if (outside > 0 && !force)
                {
                    throw new OperationException(OperationErrorKind.NotCovered,
                        $"{outside} row change(s) since {to.ToUniversalTime():o} were made outside any operation and cannot be rewound " +
                        $"from the log; restore instead ({restore}) or pass --force to rewind the operations only");
                }
                newest = reader.GetInt64(2);
            }
            var results = new List<UndoResult>();
            while (true)
            {
                await using var next = new NpgsqlCommand("""
                    SELECT o.id FROM loomworks_ai_operation_log o
                    WHERE o.id <= $1 AND o.created_at > $2 AND o.state IN ('done', 'pending') AND NOT o.undone
                      -- An undo whose target is also after the time cancels out with it: leave both as they are.
                      AND NOT EXISTS (SELECT 1 FROM loomworks_ai_operation_log t
                                      WHERE t.id = o.undo_of AND t.created_at > $2 AND t.undone_by = o.id)
                    ORDER BY o.id DESC LIMIT 1
                    """, connection);
                next.Parameters.AddWithValue(newest);
                next.Parameters.AddWithValue(to);
                if (await next.ExecuteScalarAsync(cancellationToken) is not long id)
                {
                    return (IReadOnlyList<UndoResult>)results;
                }
                results.Add(await UndoOneAsync(transaction, id, force, new OperationInfo("rewind", ToolName: "rewind"), cancellationToken));
            }
        }, cancellationToken);
    }

    private static void CheckId(long operationId)
    {
        if (operationId <= 0)
        {
            throw new OperationException(OperationErrorKind.BadInput, $"operation id must be a positive whole number, not {operationId}");
        }
    }

    private async Task<T> InTransactionAsync<T>(Func<NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            var result = await work(transaction);
            CrashPoint("undo:before-commit");
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable
            && e.MessageText.Contains("loomworks_", StringComparison.Ordinal))
        {
            throw OperationLog.MissingLog(e);
        }
    }

    private static async Task<UndoResult> UndoOneAsync(NpgsqlTransaction transaction, long id, bool force, OperationInfo? undoneBy,
        CancellationToken cancellationToken)
    {
        var connection = transaction.Connection!;
        string state;
        string? model;
        long? undoOf;
        DateTimeOffset createdAt;
        DateTimeOffset coveredSince;
        await using (var command = new NpgsqlCommand("""
            SELECT l.state, l.undone, l.undone_at, l.undone_by, l.undo_of, l.model_name, l.created_at, c.covered_since
            FROM loomworks_ai_operation_log l CROSS JOIN loomworks_oplog_coverage c WHERE l.id = $1 FOR UPDATE OF l
            """, connection))
        {
            command.Parameters.AddWithValue(id);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                throw new OperationException(OperationErrorKind.NotFound, $"operation {id} does not exist in this tenant's log");
            }
            if (reader.GetBoolean(1))
            {
                throw new OperationException(OperationErrorKind.AlreadyUndone,
                    $"operation {id} was already undone at {reader.GetFieldValue<DateTimeOffset>(2).ToUniversalTime():o}" +
                    (reader.IsDBNull(3) ? "" : $" by operation {reader.GetInt64(3)} (undo that one to redo it)"));
            }
            state = reader.GetString(0);
            undoOf = reader.IsDBNull(4) ? null : reader.GetInt64(4);
            model = reader.IsDBNull(5) ? null : reader.GetString(5);
            createdAt = reader.GetFieldValue<DateTimeOffset>(6);
            coveredSince = reader.GetFieldValue<DateTimeOffset>(7);
        }
        if (state == "failed")
        {
            throw new OperationException(OperationErrorKind.NotUndoable, $"operation {id} failed and changed nothing; there is nothing to undo");
        }
        if (createdAt < coveredSince)
        {
            throw new OperationException(OperationErrorKind.NotCovered,
                $"the changes of operation {id} ({createdAt.ToUniversalTime():o}) were pruned by loomworks_oplog_retention_days; " +
                "restore the tenant from a snapshot instead (loomworks restore <tenant> --time …)");
        }
        CrashPoint("undo:locked");
        if (!force)
        {
            await RefuseOnConflictAsync(connection, id, cancellationToken);
        }
        var info = (undoneBy ?? new OperationInfo("undo")) with { OperationType = "undo", ModelName = model };
        var scope = await OperationScope.BeginAsync(transaction, info, cancellationToken, undoOf: id);
        int rows;
        await using (var apply = new NpgsqlCommand("SELECT loomworks_apply_inverse($1)", connection))
        {
            apply.Parameters.AddWithValue(id);
            try
            {
                rows = (int)(await apply.ExecuteScalarAsync(cancellationToken))!;
            }
            catch (PostgresException e) when (e.SqlState.StartsWith("23", StringComparison.Ordinal))
            {
                throw new OperationException(OperationErrorKind.Failed,
                    $"undo of operation {id} would break a constraint ({e.MessageText}); nothing was changed", e);
            }
        }
        CrashPoint("undo:applied");
        await scope.CompleteAsync(cancellationToken);
        await using (var mark = new NpgsqlCommand("""
            UPDATE loomworks_ai_operation_log
            SET undone = (id = $1), undone_at = CASE WHEN id = $1 THEN now() END, undone_by = CASE WHEN id = $1 THEN $2::bigint END
            WHERE id = $1 OR id = $3
            """, connection))
        {
            // Undoing an undo is a redo: the original is in effect again and may be undone again.
            mark.Parameters.AddWithValue(id);
            mark.Parameters.AddWithValue(scope.Id);
            mark.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)undoOf ?? DBNull.Value);
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }
        CrashPoint("undo:marked");
        return new UndoResult(id, scope.Id, rows);
    }

    private static async Task RefuseOnConflictAsync(NpgsqlConnection connection, long id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT table_name, row_key::text, later_operation_id, later_change_at FROM loomworks_operation_conflicts($1) LIMIT 1",
            connection);
        command.Parameters.AddWithValue(id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return;
        }
        var row = $"{reader.GetString(0)} {reader.GetString(1)}";
        var by = !reader.IsDBNull(2)
            ? $"operation {reader.GetInt64(2)} changed {row} afterwards"
            : !reader.IsDBNull(3)
                ? $"a change outside any operation ({reader.GetFieldValue<DateTimeOffset>(3).ToUniversalTime():o}) altered {row} afterwards"
                : $"{row} was changed afterwards without being captured";
        var later = reader.IsDBNull(2) ? null : (long?)reader.GetInt64(2);
        throw new OperationException(OperationErrorKind.Conflict,
            $"operation {id} cannot be undone: {by}" +
            (later is { } l ? $"; undo operation {l} first, or force this undo" : "; force this undo to overwrite it"));
    }

    private static void CrashPoint(string step)
    {
        if (Environment.GetEnvironmentVariable(CrashVariable) == step)
        {
            // SIGKILL, no cleanup: exactly what a power cut or kill -9 leaves behind.
            using var self = Process.GetCurrentProcess();
            self.Kill();
        }
    }
}
