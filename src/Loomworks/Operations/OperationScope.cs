using System.Diagnostics;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>Who and what an operation is, as the seed's log records it; the context keys of an RPC call land here.</summary>
public sealed record OperationInfo(
    string OperationType,
    string? ModelName = null,
    string? SessionId = null,
    string? AgentId = null,
    long? UserId = null,
    string? ToolName = null,
    long? SnapshotId = null)
{
    /// <summary>The context keys an RPC call carries to annotate its operation.</summary>
    public const string SessionKey = "loomworks_session_id";
    public const string AgentKey = "loomworks_agent_id";
    public const string ToolKey = "loomworks_tool_name";

    /// <summary>The table whose row ids become <c>record_ids</c>: Odoo's rule, dots become underscores.</summary>
    public string? TableName => ModelName?.Replace('.', '_');
}

/// <summary>
/// One operation inside the caller's transaction: the log row is written and the transaction-local setting set at
/// the start, so every row the caller then changes is captured under this operation; <see cref="CompleteAsync"/>
/// fills in the record ids, values before and after, and the time taken. If the caller's transaction rolls back,
/// the operation and its changes vanish with it; <see cref="RecordFailureAsync"/> then logs the failure.
/// </summary>
public sealed class OperationScope
{
    private readonly NpgsqlConnection _connection;
    private readonly long _started;

    private OperationScope(NpgsqlConnection connection, OperationInfo info, long id)
    {
        _connection = connection;
        Info = info;
        Id = id;
        _started = Stopwatch.GetTimestamp();
    }

    public long Id { get; }
    public OperationInfo Info { get; }

    /// <summary>Starts an operation inside <paramref name="transaction"/> (the setting that tags the changes is transaction-local).</summary>
    public static async Task<OperationScope> BeginAsync(NpgsqlTransaction transaction, OperationInfo info,
        CancellationToken cancellationToken, long? undoOf = null)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(info);
        var connection = transaction.Connection
            ?? throw new InvalidOperationException("the transaction is already committed or rolled back");
        // One round trip: the log row and the setting together.
        await using var command = new NpgsqlCommand("""
            WITH o AS (
                INSERT INTO loomworks_ai_operation_log
                    (operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, undo_of)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
            SELECT id, set_config('loomworks.operation_id', id::text, true) FROM o
            """, connection);
        AddInfo(command, info);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)undoOf ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new OperationScope(connection, info, reader.GetInt64(0));
    }

    /// <summary>Records the operation as done with what it changed, and detaches later statements from it.</summary>
    public async Task CompleteAsync(CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            WITH c AS (
                SELECT table_name, row_key, kind, old_row, new_row, id FROM loomworks_change WHERE operation_id = $1),
            main AS (
                SELECT (row_key ->> 'id')::bigint AS rid,
                       (array_agg(old_row ORDER BY id))[1] AS before,
                       (array_agg(new_row ORDER BY id DESC))[1] AS after
                FROM c WHERE table_name = $3 AND row_key ? 'id' AND jsonb_typeof(row_key -> 'id') = 'number'
                GROUP BY 1)
            UPDATE loomworks_ai_operation_log SET
                state = 'done',
                execution_time_ms = $2,
                change_count = (SELECT count(*) FROM c),
                record_ids = coalesce((SELECT array_agg(rid ORDER BY rid) FROM main), '{}'),
                values_before = (SELECT jsonb_object_agg(rid, before) FROM main WHERE before IS NOT NULL),
                values_after = (SELECT jsonb_object_agg(rid, after) FROM main WHERE after IS NOT NULL)
            WHERE id = $1
            RETURNING set_config('loomworks.operation_id', '', true)
            """, _connection);
        command.Parameters.AddWithValue(Id);
        command.Parameters.AddWithValue(ElapsedMs());
        command.Parameters.AddWithValue((object?)Info.TableName ?? DBNull.Value);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Logs a failed operation after the caller rolled its transaction back (which took this operation's row with
    /// it); runs outside any transaction so the failure stays recorded.
    /// </summary>
    public Task<long> RecordFailureAsync(string errorMessage, CancellationToken cancellationToken) =>
        RecordFailureAsync(_connection, Info, errorMessage, ElapsedMs(), cancellationToken);

    /// <summary>
    /// Logs a failed operation on <paramref name="connection"/>, outside any transaction, for a caller whose operation
    /// began inside a transaction that was rolled back (or never began because the call was refused early).
    /// </summary>
    public static async Task<long> RecordFailureAsync(NpgsqlConnection connection, OperationInfo info, string errorMessage,
        int executionTimeMs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(info);
        await using var command = new NpgsqlCommand("""
            INSERT INTO loomworks_ai_operation_log
                (operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, state, error_message, execution_time_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'failed', $8, $9) RETURNING id
            """, connection);
        AddInfo(command, info);
        command.Parameters.AddWithValue(errorMessage);
        command.Parameters.AddWithValue(executionTimeMs);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Binds the seven annotation columns, in the order both inserts list them.</summary>
    private static void AddInfo(NpgsqlCommand command, OperationInfo info)
    {
        command.Parameters.AddWithValue(info.OperationType);
        command.Parameters.AddWithValue((object?)info.ModelName ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)info.SessionId ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)info.AgentId ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)info.UserId ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)info.ToolName ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)info.SnapshotId ?? DBNull.Value);
    }

    private int ElapsedMs() => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(_started).TotalMilliseconds);
}
