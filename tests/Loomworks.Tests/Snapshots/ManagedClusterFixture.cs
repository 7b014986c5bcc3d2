using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// What the snapshot fixtures with a cluster of their own share once it is up: the management database opened and
/// migrated as a Loomworks start opens it, tenants made directly (a database and an active row), SQL on any database.
/// </summary>
public abstract class ManagedClusterFixture
{
    public PostgresServer Server { get; protected set; } = null!;
    public TenantDataSources DataSources { get; private set; } = null!;
    public ManagementDatabase Management { get; private set; } = null!;
    public TenantStore Tenants { get; private set; } = null!;

    public Task ExecuteAsync(string database, string sql) => DataSources.For(database).ExecuteAsync(sql);

    public async Task<T> ScalarAsync<T>(string database, string sql) => (await DataSources.For(database).ScalarAsync<T>(sql))!;

    /// <summary>Creates the management database of <paramref name="settings"/> on <see cref="Server"/> if it is missing,
    /// then opens and migrates it.</summary>
    protected async Task OpenManagementAsync(LoomworksSettings settings)
    {
        await DatabaseAdmin.EnsureDatabaseAsync(Server.Endpoint, settings.ManagementDatabase, CancellationToken.None);
        (DataSources, Management) = ManagementDatabase.Open(Server.Endpoint, settings.ManagementDatabase, ManagementMigrations.All);
        await Management.MigrateAsync(CancellationToken.None);
        Tenants = new TenantStore(Management);
    }

    /// <summary>A tenant made the way provisioning will: its database (dropped first if left over) and an active row.</summary>
    protected async Task CreateTenantDatabaseAsync(string subdomain)
    {
        var quoted = DatabaseAdmin.QuoteIdentifier(subdomain);
        await ExecuteAsync("postgres", $"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)");
        await ExecuteAsync("postgres", $"CREATE DATABASE {quoted}");
        await using var command = Management.DataSource.CreateCommand("""
            INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $1, $1, 'active')
            ON CONFLICT (subdomain) DO UPDATE SET state = 'active'
            """);
        command.Parameters.AddWithValue(subdomain);
        await command.ExecuteNonQueryAsync();
    }
}
