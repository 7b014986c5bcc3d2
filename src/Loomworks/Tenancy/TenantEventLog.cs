using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// The audit of tenant events (created, suspended, deleted, …) and the NOTIFY that tells every instance to evict
/// its cached copy; both are written in the caller's transaction, so a rolled-back change is neither audited nor
/// announced.
/// </summary>
public sealed class TenantEventLog(ManagementDatabase management)
{
    public const string Channel = "loomworks_tenant_changed";

    /// <summary>A tenant change as announced on <see cref="Channel"/>: "subdomain database".</summary>
    public static string Payload(string subdomain, string databaseName) => subdomain + " " + databaseName;

    public static async Task RecordAsync(NpgsqlConnection connection, long? tenantId, string subdomain, string databaseName,
        string @event, string detail, string actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("""
                    INSERT INTO loomworks_tenant_event (tenant_id, subdomain, event, detail, actor) VALUES ($1, $2, $3, $4, $5)
                    """)
                {
                    Parameters =
                    {
                        new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint },
                        new() { Value = subdomain }, new() { Value = @event }, new() { Value = detail }, new() { Value = actor },
                    },
                },
                new NpgsqlBatchCommand("SELECT pg_notify($1, $2)")
                {
                    Parameters = { new() { Value = Channel }, new() { Value = Payload(subdomain, databaseName) } },
                },
            },
        };
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task RecordAsync(long? tenantId, string subdomain, string databaseName, string @event, string detail,
        string actor, CancellationToken cancellationToken)
    {
        await using var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        await RecordAsync(connection, tenantId, subdomain, databaseName, @event, detail, actor, cancellationToken);
    }

    /// <summary>A tenant's events, newest first.</summary>
    public async Task<IReadOnlyList<(string Event, string Detail, string Actor, DateTimeOffset At)>> ListAsync(
        string subdomain, CancellationToken cancellationToken)
    {
        await using var command = management.DataSource.CreateCommand(
            "SELECT event, detail, actor, at FROM loomworks_tenant_event WHERE subdomain = $1 ORDER BY id DESC LIMIT 200");
        command.Parameters.AddWithValue(subdomain);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<(string, string, string, DateTimeOffset)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3)));
        }
        return events;
    }
}
