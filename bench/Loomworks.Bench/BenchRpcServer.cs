using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Security;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// The Loomworks server in the bench's process, on a cluster the scenario started, with ERP tenants as provisioning
/// makes them (every migration, an admin user with password admin) registered under their database names.
/// </summary>
public sealed class BenchRpcServer : IAsyncDisposable
{
    private const string MgmtDb = "bench_mgmt";
    private readonly PostgresServer _postgres;
    private readonly WebApplication _app;

    private BenchRpcServer(PostgresServer postgres, WebApplication app, int port)
    {
        _postgres = postgres;
        _app = app;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}") };
    }

    public HttpClient Http { get; }

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
        await DatabaseAdmin.EnsureDatabaseAsync(endpoint, MgmtDb, ct);
        foreach (var db in cloneFirst ? databases.Take(1) : databases)
        {
            await DatabaseAdmin.EnsureDatabaseAsync(endpoint, db, ct);
            await using var tenant = new NpgsqlConnection(endpoint.ConnectionString(db) + ";Pooling=false");
            await tenant.OpenAsync(ct);
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(tenant, setup.Migrations, ct);
            await setup.CreateAdminUserAsync(tenant, "admin", Passwords.Hash("admin", passwordRounds), ct);
            await seed(tenant, ct);
        }
        if (cloneFirst)
        {
            await using var server = new NpgsqlConnection(endpoint.ConnectionString("postgres") + ";Pooling=false");
            await server.OpenAsync(ct);
            foreach (var db in databases.Skip(1))
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(db)} " +
                    $"TEMPLATE {DatabaseAdmin.QuoteIdentifier(databases[0])} STRATEGY FILE_COPY", server);
                await create.ExecuteNonQueryAsync(ct);
            }
        }
        var settings = LoomworksSettings.Defaults(new Dictionary<string, string>
        {
            ["db_host"] = endpoint.Host,
            ["db_port"] = endpoint.Port.ToString(CultureInfo.InvariantCulture),
            ["db_user"] = endpoint.Username,
            ["http_interface"] = "127.0.0.1",
            ["http_port"] = port.ToString(CultureInfo.InvariantCulture),
            ["loomworks_mgmt_db"] = MgmtDb,
            ["log_level"] = "warn",
            ["db_maxconn"] = maxConnections.ToString(CultureInfo.InvariantCulture),
        });
        var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance, ct);
        var app = LoomworksWebApp.Build(settings, postgres);
        await app.Services.GetRequiredService<ManagementDatabase>().MigrateAsync(ct);
        await using (var mgmt = new NpgsqlConnection(endpoint.ConnectionString(MgmtDb) + ";Pooling=false"))
        {
            await mgmt.OpenAsync(ct);
            foreach (var db in databases)
            {
                await using var insert = new NpgsqlCommand(
                    "INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $2, $1, 'active') ON CONFLICT DO NOTHING", mgmt);
                insert.Parameters.AddWithValue(db);
                insert.Parameters.AddWithValue(Subdomain(db));
                await insert.ExecuteNonQueryAsync(ct);
            }
        }
        await app.StartAsync(ct);
        return new BenchRpcServer(postgres, app, port);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _postgres.DisposeAsync();
    }
}
