using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>Reads tenant rows of the management database; they are written through <see cref="TenantLifecycle"/>.</summary>
public sealed class TenantStore(ManagementDatabase management)
{
    private const string Columns = """
        id, name, subdomain, database_name, state, tier, max_users, max_storage_gb, max_ai_operations_daily,
        subscription_expires, database_server, created_at, updated_at
        """;

    public Task<Tenant?> FindBySubdomainAsync(string subdomain, CancellationToken cancellationToken) =>
        FindAsync("subdomain", subdomain, cancellationToken);

    public Task<Tenant?> FindByDatabaseAsync(string databaseName, CancellationToken cancellationToken) =>
        FindAsync("database_name", databaseName, cancellationToken);

    public async Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken)
    {
        await using var command = management.DataSource.CreateCommand($"SELECT {Columns} FROM loomworks_tenant ORDER BY subdomain");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var tenants = new List<Tenant>();
        while (await reader.ReadAsync(cancellationToken))
        {
            tenants.Add(Read(reader));
        }
        return tenants;
    }

    private async Task<Tenant?> FindAsync(string column, string value, CancellationToken cancellationToken)
    {
        // column is one of two constants above, never input.
        await using var command = management.DataSource.CreateCommand($"SELECT {Columns} FROM loomworks_tenant WHERE {column} = $1");
        command.Parameters.AddWithValue(value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    private static Tenant Read(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5),
        r.GetInt32(6), r.GetInt32(7), r.GetInt32(8), r.IsDBNull(9) ? null : r.GetFieldValue<DateTimeOffset>(9),
        r.GetString(10), r.GetFieldValue<DateTimeOffset>(11), r.GetFieldValue<DateTimeOffset>(12));
}
