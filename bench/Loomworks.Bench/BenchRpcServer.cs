using System.Globalization;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Security;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// A <see cref="LoomworksHost"/> on a cluster the scenario started, with ERP tenants as provisioning makes them (every
/// migration, an admin user with password admin) registered under their database names.
/// </summary>
public sealed class BenchRpcServer : IAsyncDisposable
{
    private const string MgmtDb = "bench_mgmt";
    private readonly LoomworksHost _host;

    private BenchRpcServer(LoomworksHost host)
    {
        _host = host;
        Http = host.CreateClient();
    }

    public HttpClient Http { get; }

    /// <summary>The host, for scenarios that time one of its services directly.</summary>
    public LoomworksHost Host => _host;

    /// <summary>The subdomain a tenant database is registered under (its name with dashes), for X-Loomworks-Tenant.</summary>
    public static string Subdomain(string database) => database.Replace('_', '-');

    /// <summary>
    /// Creates each tenant database (<paramref name="seed"/> runs on each, after its migrations) and starts the server.
    /// With <paramref name="cloneFirst"/>, only the first database is built and the others are file copies of it.
    /// </summary>
    public static async Task<BenchRpcServer> StartAsync(PostgresEndpoint endpoint, int port, IReadOnlyList<string> databases,
        Func<NpgsqlConnection, CancellationToken, Task> seed, CancellationToken ct, bool cloneFirst = false,
        int passwordRounds = Passwords.PasswordRounds, int maxConnections = 64)
    {
        ArgumentNullException.ThrowIfNull(databases);
        ArgumentNullException.ThrowIfNull(seed);
        foreach (var db in cloneFirst ? databases.Take(1) : databases)
        {
            await DatabaseAdmin.EnsureDatabaseAsync(endpoint, db, ct);
            await using var tenant = await Sql.OpenUnpooledAsync(endpoint, db);
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(tenant, setup.Migrations, ct);
            await setup.CreateAdminUserAsync(tenant, "admin", Passwords.Hash("admin", passwordRounds), ct);
            await seed(tenant, ct);
        }
        foreach (var db in cloneFirst ? databases.Skip(1) : [])
        {
            await Sql.ExecuteAsync(endpoint, "postgres", $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(db)} " +
                $"TEMPLATE {DatabaseAdmin.QuoteIdentifier(databases[0])} STRATEGY FILE_COPY");
        }
        var host = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(endpoint)
                .Set("http_port", port.ToString(CultureInfo.InvariantCulture))
                .Set("loomworks_mgmt_db", MgmtDb)
                .Set("db_maxconn", maxConnections.ToString(CultureInfo.InvariantCulture));
            options.MigrateManagement = true;
            options.BeforeStart = async _ =>
            {
                foreach (var db in databases)
                {
                    await Sql.ExecuteAsync(endpoint, MgmtDb, "INSERT INTO loomworks_tenant (name, subdomain, database_name, state) " +
                        "VALUES ($1, $2, $1, 'active') ON CONFLICT DO NOTHING", db, Subdomain(db));
                }
            };
        }, ct);
        return new BenchRpcServer(host);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _host.DisposeAsync();
    }
}
