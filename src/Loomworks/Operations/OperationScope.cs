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
/// the start, so every row the caller then changes is captured under this operation. At commit a deferred trigger
/// fills in the record ids, values before and after, change count and time taken (from the start to the commit),
/// so completing an operation costs no round trip. If the caller's transaction rolls back, the operation and its
/// changes vanish with it; <see cref="RecordFailureAsync"/> then logs the failure.
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
                    (operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, undo_of, started_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp()) RETURNING id)
            SELECT id, set_config('loomworks.operation_id', id::text, true) FROM o
            """, connection);
        AddInfo(command, info);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)undoOf ?? DBNull.Value);
        await PrepareAsync(command, cancellationToken);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new OperationScope(connection, info, reader.GetInt64(0));
    }

    /// <summary>
    /// Marks where the operation's work ends. Nothing is sent: the log row is completed by a deferred trigger when the
    /// caller's transaction commits, which also counts any change the transaction makes after this call.
    /// </summary>
    public Task CompleteAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        IsCompleted = true;
        return Task.CompletedTask;
    }

    /// <summary>True once the caller said the operation's work is done; the log row fills in at commit.</summary>
    public bool IsCompleted { get; private set; }

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
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, info.OperationType);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)info.ModelName ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)info.SessionId ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)info.AgentId ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)info.UserId ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)info.ToolName ?? DBNull.Value);
        command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Bigint, (object?)info.SnapshotId ?? DBNull.Value);
    }

    /// <summary>
    /// Prepares a hot-path command on its physical connection (a lookup, no round trip, once prepared there). Beyond
    /// saving the parse and plan, a pooled connection holding a prepared statement is reset without DISCARD ALL, so
    /// the plans of the capture, completion and undo functions survive from one checkout to the next instead of being
    /// planned again in every transaction.
    /// </summary>
    internal static Task PrepareAsync(NpgsqlCommand command, CancellationToken cancellationToken) => command.PrepareAsync(cancellationToken);

    private int ElapsedMs() => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(_started).TotalMilliseconds);
}
