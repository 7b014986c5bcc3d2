using Loomworks.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Tenancy;

/// <summary>A tenant row to insert; limits left null take the table's defaults.</summary>
public sealed record NewTenantRow(string Name, string Subdomain, string DatabaseName, string State, string? RoleName = null)
{
    public string? Tier { get; init; }
    public int? MaxUsers { get; init; }
    public int? MaxStorageGb { get; init; }
    public int? MaxAiOperationsDaily { get; init; }
    public DateTimeOffset? SubscriptionExpires { get; init; }
}

/// <summary>
/// The writes of tenant rows other features make (provisioning, the database manager, restores): each one with its
/// audit row and the NOTIFY that evicts every instance's cache, in the caller's transaction when it has one.
/// </summary>
public sealed partial class TenantLifecycle
{
    private const string MoveState = "UPDATE loomworks_tenant SET state = $3, updated_at = now()";
    private const string DeleteRow = "DELETE FROM loomworks_tenant";

    /// <summary>
    /// Inserts <paramref name="row"/> and records its state as the event; returns its id, or null when
    /// <paramref name="ifAbsent"/> and the subdomain is taken. Otherwise a taken name throws PostgreSQL's unique violation.
    /// </summary>
    public static async Task<long?> InsertAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, NewTenantRow row,
        string detail, string actor, CancellationToken ct, bool ifAbsent = false)
    {
        ArgumentNullException.ThrowIfNull(row);
        var columns = new List<string> { "name", "subdomain", "database_name", "state" };
        await using var insert = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        insert.Parameters.AddWithValue(row.Name);
        insert.Parameters.AddWithValue(row.Subdomain);
        insert.Parameters.AddWithValue(row.DatabaseName);
        insert.Parameters.AddWithValue(row.State);
        void Add(string column, object? value, NpgsqlDbType type)
        {
            if (value is not null)
            {
                columns.Add(column);
                insert.Parameters.AddWithValue(type, value);
            }
        }
        Add("tier", row.Tier, NpgsqlDbType.Text);
        Add("max_users", row.MaxUsers, NpgsqlDbType.Integer);
        Add("max_storage_gb", row.MaxStorageGb, NpgsqlDbType.Integer);
        Add("max_ai_operations_daily", row.MaxAiOperationsDaily, NpgsqlDbType.Integer);
        Add("subscription_expires", row.SubscriptionExpires, NpgsqlDbType.TimestampTz);
        Add("role_name", row.RoleName, NpgsqlDbType.Text);
        var values = string.Join(", ", columns.Select((_, i) => "$" + (i + 1)));
        insert.CommandText = $"INSERT INTO loomworks_tenant ({string.Join(", ", columns)}) VALUES ({values})"
            + (ifAbsent ? " ON CONFLICT (subdomain) DO NOTHING" : "") + " RETURNING id";
        if (await insert.ExecuteScalarAsync(ct) is not long id)
        {
            return null;
        }
        await TenantEventLog.RecordAsync(connection, id, row.Subdomain, row.DatabaseName, row.State, detail, actor, ct);
        return id;
    }

    /// <summary>
    /// Moves the tenant with id <paramref name="id"/> to <paramref name="state"/> (only from <paramref name="onlyFrom"/>
    /// when given) and records <paramref name="event"/>; false when no row changed, and then nothing is recorded.
    /// </summary>
    public static Task<bool> SetStateAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, long id, string state,
        string? onlyFrom, string @event, string detail, string actor, CancellationToken ct) =>
        Changed(ChangeAsync(connection, transaction, MoveState, "id = $1", id, onlyFrom,
            state, @event, detail, actor, ct));

    /// <summary>As the <c>SetStateAsync</c> above, for the tenant whose database is <paramref name="databaseName"/>.</summary>
    public static Task<bool> SetStateOfDatabaseAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string databaseName,
        string state, string? onlyFrom, string @event, string detail, string actor, CancellationToken ct) =>
        Changed(ChangeAsync(connection, transaction, MoveState, "database_name = $1",
            databaseName, onlyFrom, state, @event, detail, actor, ct));

    /// <summary>Removes the row of a tenant (only in <paramref name="onlyIn"/> when given) and records <paramref name="event"/>.</summary>
    public static Task<bool> RemoveAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, long id, string? onlyIn,
        string @event, string detail, string actor, CancellationToken ct) =>
        Changed(ChangeAsync(connection, transaction, DeleteRow, "id = $1", id, onlyIn, null, @event, detail, actor, ct));

    /// <summary>As <c>RemoveAsync</c>, for the tenant whose database is <paramref name="databaseName"/>.</summary>
    public static Task<bool> RemoveDatabaseAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string databaseName,
        string? onlyIn, string @event, string detail, string actor, CancellationToken ct) =>
        Changed(ChangeAsync(connection, transaction, DeleteRow, "database_name = $1", databaseName, onlyIn, null,
            @event, detail, actor, ct));

    /// <summary>
    /// Moves tenant <paramref name="id"/> to <paramref name="state"/> in a transaction of its own, with its event, and
    /// forgets it in this instance's cache; false when there is no such tenant.
    /// </summary>
    public async Task<bool> SetStateAsync(long id, string state, string @event, string detail, string actor, CancellationToken ct)
    {
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var changed = await ChangeAsync(connection, transaction, MoveState,
            "id = $1", id, null, state, @event, detail, actor, ct);
        await transaction.CommitAsync(ct);
        if (changed is var (subdomain, database))
        {
            cache?.Evict(subdomain, database);
        }
        return changed is not null;
    }

    /// <summary>Inserts <paramref name="row"/> in a transaction of its own; null when its subdomain is taken.</summary>
    public async Task<long?> InsertIfAbsentAsync(NewTenantRow row, string detail, string actor, CancellationToken ct)
    {
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var id = await InsertAsync(connection, transaction, row, detail, actor, ct, ifAbsent: true);
        await transaction.CommitAsync(ct);
        if (id is not null)
        {
            cache?.Evict(row.Subdomain, row.DatabaseName);
        }
        return id;
    }

    private static async Task<bool> Changed(Task<(string Subdomain, string Database)?> change) => await change is not null;

    /// <summary>
    /// Runs <paramref name="change"/> on the row matching <paramref name="where"/> ($1 = <paramref name="key"/>, $2 = the
    /// state it must be in, $3 = the new state) and, when a row changed, audits and announces it.
    /// </summary>
    private static async Task<(string Subdomain, string Database)?> ChangeAsync(NpgsqlConnection connection,
        NpgsqlTransaction? transaction, string change, string where, object key, string? onlyIn, string? state, string @event,
        string detail, string actor, CancellationToken ct)
    {
        if (state is not null && !TenantStates.All.Contains(state))
        {
            throw new ArgumentException($"'{state}' is not a tenant state ({string.Join(", ", TenantStates.All)})", nameof(state));
        }
        // change and where are constants of this class, never input.
        await using var command = new NpgsqlCommand(
            $"{change} WHERE {where} AND ($2::text IS NULL OR state = $2) RETURNING id, subdomain, database_name",
            connection, transaction);
        command.Parameters.AddWithValue(key);
        command.Parameters.AddNullable(NpgsqlDbType.Text, onlyIn);
        if (state is not null)
        {
            command.Parameters.AddWithValue(state);
        }
        long id;
        string subdomain, database;
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            if (!await reader.ReadAsync(ct))
            {
                return null;
            }
            (id, subdomain, database) = (reader.GetInt64(0), reader.GetString(1), reader.GetString(2));
        }
        await TenantEventLog.RecordAsync(connection, id, subdomain, database, @event, detail, actor, ct);
        return (subdomain, database);
    }
}
