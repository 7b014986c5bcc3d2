using System.Diagnostics;
using Loomworks.Postgres;
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
/// One operation inside the caller's transaction. Starting one sends nothing: the first captured statement of the
/// transaction draws the operation's id and tags every change with it. <see cref="CommitAsync"/> writes the log row
/// (who, what, the time taken) and commits, in the one round trip the commit costs anyway; record ids, values before
/// and after and the change count are read from the change rows. If the caller's transaction rolls back instead, the
/// operation and its changes vanish with it; <see cref="RecordFailureAsync"/> then logs the failure.
/// </summary>
public sealed class OperationScope
{
    private readonly NpgsqlTransaction _transaction;
    private readonly NpgsqlConnection _connection;
    private readonly long _started;

    private OperationScope(NpgsqlTransaction transaction, NpgsqlConnection connection, OperationInfo info)
    {
        _transaction = transaction;
        _connection = connection;
        Info = info;
        _started = Stopwatch.GetTimestamp();
    }

    /// <summary>The operation's id in the log, known once <see cref="CommitAsync"/> has written it.</summary>
    public long? Id { get; private set; }

    public OperationInfo Info { get; }

    /// <summary>
    /// Starts an operation inside <paramref name="transaction"/>. Nothing is sent: the transaction-local setting that
    /// tags the changes is set by the first statement that captures one, so the operation costs no round trip here.
    /// </summary>
    public static OperationScope Begin(NpgsqlTransaction transaction, OperationInfo info)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(info);
        var connection = transaction.Connection
            ?? throw new InvalidOperationException("the transaction is already committed or rolled back");
        return new OperationScope(transaction, connection, info);
    }

    /// <summary>
    /// Writes the log row and commits the transaction in one round trip. The row is written once and never updated:
    /// what the operation changed is every change the transaction captured under its id, read from the change rows.
    /// On failure the transaction is rolled back (or was, by the server) before the exception propagates.
    /// </summary>
    public async Task<long> CommitAsync(CancellationToken cancellationToken)
    {
        if (Id is { } done)
        {
            return done;
        }
        await using var batch = new NpgsqlBatch(_connection, _transaction);
        var log = new NpgsqlBatchCommand(LogSql);
        AddInfo(log.Parameters, Info);
        log.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Integer, ElapsedMs());
        batch.BatchCommands.Add(log);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
        try
        {
            await batch.PrepareAsync(cancellationToken);
            Id = (long)(await batch.ExecuteScalarAsync(cancellationToken))!;
        }
        catch
        {
            // The log row failed (the transaction is aborted but open) or the commit did (it is gone): end it either way.
            await RollbackIfOpenAsync(_transaction);
            throw;
        }
        return Id.Value;
    }

    /// <summary>
    /// Rolls <paramref name="transaction"/> back unless it already ended: a failed <see cref="CommitAsync"/> whose COMMIT
    /// the server refused (a deferred constraint) leaves no transaction to roll back.
    /// </summary>
    public static async Task RollbackIfOpenAsync(NpgsqlTransaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        try
        {
            await transaction.RollbackAsync(CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            // Npgsql's word for "this transaction has completed": nothing is left to roll back.
        }
    }

    /// <summary>
    /// The log row, under the id the transaction's changes carry (drawn now when nothing was captured). It stores no
    /// summary: record ids, values and the change count are read from the change rows (loomworks_operation_log_read).
    /// </summary>
    private const string LogSql = """
        INSERT INTO loomworks_ai_operation_log
            (id, operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, execution_time_ms, state)
        OVERRIDING SYSTEM VALUE
        VALUES (coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, nextval('loomworks_ai_operation_log_id_seq')),
                $1, $2, $3, $4, $5, $6, $7, $8, 'done')
        RETURNING id
        """;

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
                (operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, state, error_message, execution_time_ms,
                 record_ids, change_count)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'failed', $8, $9, '{}', 0) RETURNING id
            """, connection);
        AddInfo(command.Parameters, info);
        command.Parameters.AddWithValue(errorMessage);
        command.Parameters.AddWithValue(executionTimeMs);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Binds the seven annotation columns, in the order both inserts list them.</summary>
    private static void AddInfo(NpgsqlParameterCollection parameters, OperationInfo info)
    {
        parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, info.OperationType);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, info.ModelName);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, info.SessionId);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, info.AgentId);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Bigint, info.UserId);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, info.ToolName);
        parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Bigint, info.SnapshotId);
    }

    /// <summary>
    /// Prepares a hot-path command on its physical connection (a lookup, no round trip, once prepared there). Beyond
    /// saving the parse and plan, a pooled connection holding a prepared statement is reset without DISCARD ALL, so
    /// the plans of the capture, completion and undo functions survive from one checkout to the next instead of being
    /// planned again in every transaction.
    /// </summary>
    internal static Task PrepareAsync(NpgsqlCommand command, CancellationToken cancellationToken) =>
        command.PrepareAsync(cancellationToken);

    private int ElapsedMs() => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(_started).TotalMilliseconds);
}
