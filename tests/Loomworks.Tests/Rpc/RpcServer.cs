using Loomworks.Security;
using Loomworks.Operations;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// The real web server in-process on 127.0.0.1 and a free port, with its own management database and one active
/// tenant database (ERP schema applied, admin/admin); a second tenant when asked, to check that credentials stay in theirs.
/// </summary>
public sealed class RpcServer : IAsyncDisposable
{
    public const long BodyLimit = 256 * 1024;

    private RpcServer(WebApplication app, PostgresServer postgres, string url, string db, Scratch dataDir)
    {
        DataDir = dataDir;
        App = app;
        Postgres = postgres;
        Url = url;
        Db = db;
    }

    public WebApplication App { get; }
    public PostgresServer Postgres { get; }
    public string Url { get; }
    public string Db { get; }

    /// <summary>The server's data_dir (its filestore is under filestore/&lt;db&gt;).</summary>
    public Scratch DataDir { get; }

    public static Task<RpcServer> StartAsync(PostgresFixture fixture, string name, params string[] extraTenants) =>
        StartAsync(fixture, name, new Dictionary<string, string>(), BodyLimit, extraTenants);

    /// <summary>As above, with more configuration keys (admin_passwd for the admin API, say).</summary>
    public static Task<RpcServer> StartAsync(PostgresFixture fixture, string name, IReadOnlyDictionary<string, string> extraSettings,
        params string[] extraTenants) =>
        StartAsync(fixture, name, extraSettings, BodyLimit, extraTenants);

    /// <summary>A server with extra configuration keys and its own body limit.</summary>
    public static async Task<RpcServer> StartAsync(PostgresFixture fixture, string name, IReadOnlyDictionary<string, string> extraSettings,
        long bodyLimit, params string[] extraTenants)
    {
        var dataDir = new Scratch("rpc");
        var management = await fixture.CreateDatabaseAsync(name + "_mgmt");
        var port = Scratch.FreePort();
        var settings = LoomworksSettings.Defaults(new Dictionary<string, string>
        {
            ["db_host"] = fixture.Endpoint.Host,
            ["db_port"] = fixture.Endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["db_user"] = fixture.Endpoint.Username,
            ["http_interface"] = "127.0.0.1",
            ["http_port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["loomworks_mgmt_db"] = management,
            ["log_level"] = "warn",
            ["data_dir"] = dataDir.Path,
        }.Concat(extraSettings).ToDictionary());
        var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance);
        var app = LoomworksWebApp.Build(settings, postgres,
            builder => builder.Services.AddSingleton(new RpcOptions { MaxBodyBytes = bodyLimit }));
        await app.Services.GetRequiredService<ManagementDatabase>().MigrateAsync(CancellationToken.None);
        foreach (var db in new[] { name }.Concat(extraTenants))
        {
            await CreateTenantAsync(fixture, management, db);
        }
        await app.StartAsync();
        return new RpcServer(app, postgres, $"http://127.0.0.1:{port}", name, dataDir);
    }

    private static async Task CreateTenantAsync(PostgresFixture fixture, string management, string db)
    {
        await fixture.CreateDatabaseAsync(db);
        await using (var connection = new Npgsql.NpgsqlConnection(fixture.Endpoint.ConnectionString(db) + ";Pooling=false"))
        {
            await connection.OpenAsync();
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(connection, setup.Migrations, CancellationToken.None);
            await setup.CreateAdminUserAsync(connection, "admin", Passwords.Hash("admin"), CancellationToken.None);
        }
        await fixture.ExecuteAsync(management,
            $"INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ('{db}', '{db.Replace('_', '-')}', '{db}', 'active')");
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        await Postgres.DisposeAsync();
        DataDir.Dispose();
    }
}

/// <summary>One server per test class: xunit makes a class instance per test, so the server lives in a class fixture.</summary>
public abstract class RpcServerFixture(PostgresFixture postgres, string name, params string[] extraTenants) : IAsyncLifetime
{
    public RpcServer Server { get; private set; } = null!;
    public PostgresFixture Postgres => postgres;

    public async ValueTask InitializeAsync()
    {
        Server = await RpcServer.StartAsync(postgres, name, extraTenants);
        await SeedAsync();
    }

    protected virtual Task SeedAsync() => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
