using Loomworks.Postgres;
using System.Text.Json;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>Reads the operation log of one tenant database.</summary>
public sealed class OperationLog(PooledDatabase dataSource)
{
    internal const string Columns = """
        id, session_id, agent_id, user_id, tool_name, operation_type, model_name, record_ids, values_before,
        values_after, state, error_message, execution_time_ms, snapshot_id, undone, undone_at, undone_by, undo_of,
        change_count, created_at
        """;

    /// <summary>Newest first; filters are checked here so a bad one is a clear refusal rather than a SQL error.</summary>
    public async Task<IReadOnlyList<OperationRecord>> ListAsync(OperationFilter filter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (filter.Limit is < 1 or > OperationFilter.MaxLimit)
        {
            throw new OperationException(OperationErrorKind.BadInput,
                $"limit must be between 1 and {OperationFilter.MaxLimit}, not {filter.Limit}");
        }
        if (filter.Since is { } since && filter.Until is { } until && since > until)
        {
            throw new OperationException(OperationErrorKind.BadInput, $"since ({since:o}) is after until ({until:o})");
        }
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM loomworks_operation_log_read
            WHERE ($1::text IS NULL OR session_id = $1) AND ($2::text IS NULL OR agent_id = $2)
              AND ($3::text IS NULL OR model_name = $3)
              AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at <= $5)
            ORDER BY id DESC LIMIT $6
            """);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, filter.SessionId);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, filter.AgentId);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, filter.ModelName);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.TimestampTz, filter.Since);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.TimestampTz, filter.Until);
        command.Parameters.AddWithValue(filter.Limit);
        return await ReadAllAsync(command, cancellationToken);
    }

    public async Task<OperationRecord?> FindAsync(long id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM loomworks_operation_log_read WHERE id = $1");
        command.Parameters.AddWithValue(id);
        var rows = await ReadAllAsync(command, cancellationToken);
        return rows.Count == 0 ? null : rows[0];
    }

    private static async Task<IReadOnlyList<OperationRecord>> ReadAllAsync(PooledCommand command, CancellationToken cancellationToken)
    {
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var rows = new List<OperationRecord>();
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(Read(reader));
            }
            return rows;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw MissingLog(e);
        }
    }

    internal static OperationException MissingLog(Exception inner) => new(OperationErrorKind.LogMissing,
        "this database has no operation log (its operations schema is not installed)", inner);

    private static OperationRecord Read(NpgsqlDataReader r) => new(
        r.GetInt64(0), Text(r, 1), Text(r, 2), r.IsDBNull(3) ? null : r.GetInt64(3), Text(r, 4), r.GetString(5), Text(r, 6),
        r.GetFieldValue<long[]>(7), Json(r, 8), Json(r, 9), r.GetString(10), Text(r, 11),
        r.IsDBNull(12) ? null : r.GetInt32(12), r.IsDBNull(13) ? null : r.GetInt64(13), r.GetBoolean(14),
        r.IsDBNull(15) ? null : r.GetFieldValue<DateTimeOffset>(15), r.IsDBNull(16) ? null : r.GetInt64(16),
        r.IsDBNull(17) ? null : r.GetInt64(17), r.GetInt32(18), r.GetFieldValue<DateTimeOffset>(19));

    private static string? Text(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static JsonElement? Json(NpgsqlDataReader r, int i) =>
        r.IsDBNull(i) ? null : JsonDocument.Parse(r.GetString(i)).RootElement.Clone();
}
