using Loomworks.Postgres;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// Undoes operations of one tenant database from their captured changes: one operation, a whole session (newest
/// first) or everything after a time. Each call is one transaction, so it happens entirely or not at all, and each
/// undo is itself an operation, so undoing it redoes the original.
/// </summary>
public sealed class UndoService(PooledDatabase dataSource)
{
    /// <summary>Undoes one operation; refuses (naming the later operation) when its rows changed since, unless forced.</summary>
    public async Task<UndoResult> UndoAsync(long operationId, bool force, OperationInfo? undoneBy, CancellationToken cancellationToken)
    {
        CheckId(operationId);
        return await InTransactionAsync(async transaction =>
            (await UndoManyAsync(transaction, [operationId], force, undoneBy, cancellationToken))[0], cancellationToken);
    }

    /// <summary>Undoes every operation of a session that is still in effect, newest first, in one transaction.</summary>
    public async Task<IReadOnlyList<UndoResult>> UndoSessionAsync(string sessionId, bool force, OperationInfo? undoneBy,
        CancellationToken cancellationToken)
    {
        return await InTransactionAsync(transaction => UndoSessionAsync(transaction, sessionId, force, undoneBy, cancellationToken),
            cancellationToken);
    }

    /// <summary>Undoes one operation inside the caller's transaction (an RPC call's), which commits or rolls back.</summary>
    public static async Task<UndoResult> UndoAsync(NpgsqlTransaction transaction, long operationId, bool force, OperationInfo? undoneBy,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        CheckId(operationId);
        return (await UndoManyAsync(transaction, [operationId], force, undoneBy, cancellationToken))[0];
    }

    /// <summary>
    /// Undoes the operations in the order given inside the caller's transaction, in one round trip; a refusal of any
    /// of them throws, and the caller's rollback then leaves every one of them as it was.
    /// </summary>
    public static async Task<IReadOnlyList<UndoResult>> UndoAsync(NpgsqlTransaction transaction, IReadOnlyList<long> operationIds,
        bool force, OperationInfo? undoneBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(operationIds);
        foreach (var id in operationIds)
        {
            CheckId(id);
        }
        return await UndoManyAsync(transaction, operationIds, force, undoneBy, cancellationToken);
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
        // The session's operations are picked, locked and undone in one statement: one round trip however many there are.
        var results = await RunUndoAsync(transaction, """
            ARRAY(SELECT id FROM loomworks_ai_operation_log
                  WHERE session_id = $1 AND state IN ('done', 'pending') AND NOT undone AND undo_of IS NULL
                  ORDER BY id DESC FOR UPDATE)
            """, sessionId, force, undoneBy, cancellationToken);
        if (results.Count == 0)
        {
            throw new OperationException(OperationErrorKind.NotFound, $"session '{sessionId}' has no operations left to undo");
        }
        return results;
    }

    /// <summary>
    /// Undoes every operation after <paramref name="to"/>, newest first, when the change log covers that time;
    /// otherwise refuses and points to the point-in-time restore of <paramref name="tenant"/>.
    /// </summary>
    public async Task<IReadOnlyList<UndoResult>> RewindAsync(DateTimeOffset to, bool force, string tenant,
        CancellationToken cancellationToken)
    {
        var restore = $"loomworks restore {tenant} --time "
            + to.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        return await InTransactionAsync(async transaction =>
        {
            var connection = transaction.Connection!;
            long newest;
            await using (var coverage = new NpgsqlCommand("""
                SELECT covered_since,
                       -- Outside any operation: no id (captured before migration 2005) or an id no log row has.
                       (SELECT count(*) FROM loomworks_change c WHERE c.changed_at > $1
                          AND NOT EXISTS (SELECT 1 FROM loomworks_ai_operation_log l WHERE l.id = c.operation_id)),
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
                        $"the operation log only covers changes since {coveredSince.ToUniversalTime():o}, "
                        + $"after {to.ToUniversalTime():o}; " +
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
                results.AddRange(await UndoManyAsync(transaction, [id], force, new OperationInfo("rewind", ToolName: "rewind"),
                    cancellationToken));
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
            CrashPoint.Reached("undo:before-commit");
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedFunction
            && e.MessageText.Contains("loomworks_", StringComparison.Ordinal))
        {
            throw OperationLog.MissingLog(e);
        }
    }

    private static Task<IReadOnlyList<UndoResult>> UndoManyAsync(NpgsqlTransaction transaction, IReadOnlyList<long> ids, bool force,
        OperationInfo? undoneBy, CancellationToken cancellationToken) =>
        RunUndoAsync(transaction, "$1::bigint[]", ids.ToArray(), force, undoneBy, cancellationToken);

    /// <summary>
    /// Calls loomworks_undo on the operations <paramref name="idsSql"/> names (with <paramref name="parameter"/> as $1):
    /// it locks each, checks it, logs the undo, applies the inverse, completes the undo and marks both, all server-side
    /// in one statement. Its refusals come back as SQLSTATE LWU00 with a JSON message, turned here into the
    /// <see cref="OperationException"/> that names the problem.
    /// </summary>
    private static async Task<IReadOnlyList<UndoResult>> RunUndoAsync(NpgsqlTransaction transaction, string idsSql, object parameter,
        bool force, OperationInfo? undoneBy, CancellationToken cancellationToken)
    {
        var by = undoneBy ?? new OperationInfo("undo");
        var results = new List<UndoResult>();
        await using (var command = new NpgsqlCommand($"SELECT * FROM loomworks_undo({idsSql}, $2, $3, $4, $5, $6, $7)",
            transaction.Connection))
        {
            command.Parameters.AddWithValue(parameter is string
                ? NpgsqlTypes.NpgsqlDbType.Text
                : NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Bigint, parameter);
            command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Boolean, force);
            command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, by.SessionId);
            command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, by.AgentId);
            command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Bigint, by.UserId);
            command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, by.ToolName);
            command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Bigint, by.SnapshotId);
            await OperationScope.PrepareAsync(command, cancellationToken);
            try
            {
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    results.Add(new UndoResult(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt32(2)));
                }
            }
            catch (PostgresException e) when (e.SqlState == RefusalState)
            {
                throw Refusal(e);
            }
        }
        // Locking, applying and marking happen inside the one statement above; the hooks mark the same steps from
        // here, so a kill at any of them still leaves the transaction uncommitted.
        CrashPoint.Reached("undo:locked");
        CrashPoint.Reached("undo:applied");
        CrashPoint.Reached("undo:marked");
        return results;
    }

    /// <summary>The SQLSTATE loomworks_undo raises a refusal with.</summary>
    private const string RefusalState = "LWU00";

    private static OperationException Refusal(PostgresException e)
    {
        using var json = JsonDocument.Parse(e.MessageText);
        var r = json.RootElement;
        var id = r.GetProperty("id").GetInt64();
        long? Long(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;
        DateTimeOffset? Time(string name) =>
            r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetDateTimeOffset() : null;
        string Text(string name) => r.GetProperty(name).GetString() ?? "";
        switch (Text("refusal"))
        {
            case "not_found":
                return new OperationException(OperationErrorKind.NotFound, $"operation {id} does not exist in this tenant's log", e);
            case "already_undone":
                var by = Long("undone_by");
                return new OperationException(OperationErrorKind.AlreadyUndone,
                    $"operation {id} was already undone at {Time("undone_at")?.ToUniversalTime():o}" +
                    (by is null ? "" : $" by operation {by} (undo that one to redo it)"), e);
            case "failed":
                return new OperationException(OperationErrorKind.NotUndoable,
                    $"operation {id} failed and changed nothing; there is nothing to undo", e);
            case "not_covered":
                return new OperationException(OperationErrorKind.NotCovered,
                    $"the changes of operation {id} ({Time("created_at")?.ToUniversalTime():o}) were pruned by "
                    + "loomworks_oplog_retention_days; " +
                    "restore the tenant from a snapshot instead (loomworks restore <tenant> --time …)", e);
            case "conflict":
                var row = $"{Text("table")} {Text("row_key")}";
                var later = Long("later_operation_id");
                var at = Time("later_change_at");
                var what = later is not null
                    ? $"operation {later} changed {row} afterwards"
                    : at is not null
                        ? $"a change outside any operation ({at.Value.ToUniversalTime():o}) altered {row} afterwards"
                        : $"{row} was changed afterwards without being captured";
                return new OperationException(OperationErrorKind.Conflict,
                    $"operation {id} cannot be undone: {what}" +
                    (later is { } l ? $"; undo operation {l} first, or force this undo" : "; force this undo to overwrite it"), e);
            default:
                return new OperationException(OperationErrorKind.Failed,
                    $"undo of operation {id} would break a constraint ({Text("message")}); nothing was changed", e);
        }
    }
}
