using System.Globalization;
using System.Text;
using System.Text.Json;
using Loomworks.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Operations;

/// <summary>
/// What a page of the timeline shows; every field is optional. <see cref="Before"/> is the keyset cursor: the page
/// holds the newest operations with a smaller id. <see cref="UserId"/> limits the page to one user's operations.
/// </summary>
public sealed record TimelineQuery(
    string? SessionId = null,
    string? AgentId = null,
    string? ModelName = null,
    DateTimeOffset? Since = null,
    DateTimeOffset? Until = null,
    long? UserId = null,
    long? Before = null,
    int Limit = TimelineQuery.DefaultLimit)
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 200;
}

/// <summary>One operation as a line of the timeline: who, what, when and whether it is still in effect.</summary>
public sealed record TimelineEntry(
    long Id,
    DateTimeOffset CreatedAt,
    string OperationType,
    string? ModelName,
    string? SessionId,
    string? AgentId,
    long? UserId,
    string? ToolName,
    string State,
    bool Undone,
    long? UndoneBy,
    long? UndoOf,
    IReadOnlyList<long> RecordIds,
    int ChangeCount,
    string? ErrorMessage);

/// <summary>A page of the timeline and the cursor of the next (older) page, null on the last.</summary>
public sealed record TimelinePage(IReadOnlyList<TimelineEntry> Entries, long? NextBefore);

/// <summary>One captured row change of an operation: the row's key and its version before and after.</summary>
public sealed record RowChange(long Id, string Table, string RowKey, char Kind, JsonElement? Before, JsonElement? After,
    DateTimeOffset ChangedAt);

/// <summary>
/// The operation log read a page at a time, newest first, by keyset (never OFFSET): each page starts below the last id
/// of the one before, so a page deep in a log of millions costs what the first does. Only the filters given become SQL,
/// so each shape of query gets the plan of its own index (session, agent, model, user, or the primary key).
/// </summary>
public sealed class OperationTimeline(PooledDatabase dataSource)
{
    /// <summary>Most row changes an operation's page shows; the rest are counted, not listed.</summary>
    public const int MaxChangesShown = 500;

    /// <summary>The statement and parameters of one page, exactly as <see cref="PageAsync"/> runs it (the bench runs it raw).</summary>
    public static (string Sql, IReadOnlyList<NpgsqlParameter> Parameters) PageStatement(TimelineQuery query)
    {
        Check(query);
        var where = new StringBuilder();
        var parameters = new List<NpgsqlParameter>();
        void Add(string condition, NpgsqlDbType type, object value)
        {
            parameters.Add(new NpgsqlParameter { NpgsqlDbType = type, Value = value });
            where.Append(where.Length == 0 ? "WHERE " : " AND ")
                .Append(condition.Replace("$", "$" + parameters.Count.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        }
        if (query.Before is { } before)
        {
            Add("id < $", NpgsqlDbType.Bigint, before);
        }
        if (query.SessionId is { } session)
        {
            Add("session_id = $", NpgsqlDbType.Text, session);
        }
        if (query.AgentId is { } agent)
        {
            Add("agent_id = $", NpgsqlDbType.Text, agent);
        }
        if (query.ModelName is { } model)
        {
            Add("model_name = $", NpgsqlDbType.Text, model);
        }
        if (query.UserId is { } user)
        {
            Add("user_id = $", NpgsqlDbType.Bigint, user);
        }
        if (query.Since is { } since)
        {
            Add("created_at >= $", NpgsqlDbType.TimestampTz, since.ToUniversalTime());
        }
        if (query.Until is { } until)
        {
            Add("created_at <= $", NpgsqlDbType.TimestampTz, until.ToUniversalTime());
        }
        // One more row than the page shows says whether an older page exists.
        parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer, Value = query.Limit + 1 });
        var sql = $"""
            SELECT id, created_at, operation_type, model_name, session_id, agent_id, user_id, tool_name, state, undone, undone_by,
                   undo_of, record_ids, change_count, error_message
            FROM loomworks_operation_log_read {where}
            ORDER BY id DESC LIMIT ${parameters.Count.ToString(CultureInfo.InvariantCulture)}
            """;
        return (sql, parameters);
    }

    /// <summary>One page, newest first, and the cursor of the next.</summary>
    public async Task<TimelinePage> PageAsync(TimelineQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var (sql, parameters) = PageStatement(query);
        await using var command = dataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter);
        }
        var entries = new List<TimelineEntry>();
        try
        {
            await using var r = await command.ExecuteReaderAsync(cancellationToken);
            while (await r.ReadAsync(cancellationToken))
            {
                entries.Add(new TimelineEntry(r.GetInt64(0), r.GetFieldValue<DateTimeOffset>(1), r.GetString(2), Text(r, 3), Text(r, 4),
                    Text(r, 5), r.IsDBNull(6) ? null : r.GetInt64(6), Text(r, 7), r.GetString(8), r.GetBoolean(9),
                    r.IsDBNull(10) ? null : r.GetInt64(10), r.IsDBNull(11) ? null : r.GetInt64(11),
                    r.IsDBNull(12) ? [] : r.GetFieldValue<long[]>(12), r.IsDBNull(13) ? 0 : r.GetInt32(13), Text(r, 14)));
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw OperationLog.MissingLog(e);
        }
        if (entries.Count <= query.Limit)
        {
            return new TimelinePage(entries, null);
        }
        entries.RemoveAt(entries.Count - 1);
        return new TimelinePage(entries, entries[^1].Id);
    }

    /// <summary>
    /// The row changes an operation made, in the order they happened (at most <see cref="MaxChangesShown"/>), and how
    /// many there are in all. Empty once retention pruned them: the log row's stored summary is all that remains.
    /// </summary>
    public async Task<(IReadOnlyList<RowChange> Changes, long Total)> ChangesAsync(long operationId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT id, table_name, row_key::text, kind, old_row::text, new_row::text, changed_at, count(*) OVER ()
            FROM loomworks_change WHERE operation_id = $1 ORDER BY id LIMIT $2
            """);
        command.Parameters.AddWithValue(operationId);
        command.Parameters.AddWithValue(MaxChangesShown);
        var changes = new List<RowChange>();
        long total = 0;
        await using var r = await command.ExecuteReaderAsync(cancellationToken);
        while (await r.ReadAsync(cancellationToken))
        {
            changes.Add(new RowChange(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetChar(3), Json(r, 4), Json(r, 5),
                r.GetFieldValue<DateTimeOffset>(6)));
            total = r.GetInt64(7);
        }
        return (changes, total);
    }

    /// <summary>Operations logged with an agent id since <paramref name="since"/>: what agents did, as the log saw it.</summary>
    public async Task<long> AgentOperationsSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT count(*) FROM loomworks_ai_operation_log WHERE created_at >= $1 AND agent_id IS NOT NULL AND undo_of IS NULL");
        command.Parameters.AddWithValue(since.ToUniversalTime());
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Whether every operation of <paramref name="sessionId"/> is <paramref name="userId"/>'s (false for an empty session).
    /// </summary>
    public async Task<bool> SessionIsOnlyUsersAsync(string sessionId, long userId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT coalesce(bool_and(user_id IS NOT DISTINCT FROM $2), false) FROM loomworks_ai_operation_log WHERE session_id = $1");
        command.Parameters.AddWithValue(sessionId);
        command.Parameters.AddWithValue(userId);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static void Check(TimelineQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Limit is < 1 or > TimelineQuery.MaxLimit)
        {
            throw new OperationException(OperationErrorKind.BadInput,
                $"a page holds 1 to {TimelineQuery.MaxLimit} operations, not {query.Limit}");
        }
        if (query.Before is <= 0)
        {
            throw new OperationException(OperationErrorKind.BadInput, "the page cursor must be a positive operation id");
        }
        if (query.Since is { } since && query.Until is { } until && since > until)
        {
            throw new OperationException(OperationErrorKind.BadInput, $"since ({since:o}) is after until ({until:o})");
        }
        foreach (var (text, what) in new[] { (query.SessionId, "session"), (query.AgentId, "agent"), (query.ModelName, "model") })
        {
            OperationInput.Text(text, what);
        }
    }

    private static string? Text(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static JsonElement? Json(NpgsqlDataReader r, int i) =>
        r.IsDBNull(i) ? null : JsonDocument.Parse(r.GetString(i)).RootElement.Clone();
}
