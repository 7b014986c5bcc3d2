using Loomworks.Security;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// A <see cref="LoomworksHost"/> with its own management database and one active tenant database (ERP schema
/// applied, admin/admin); a second tenant when asked, to check that credentials stay in theirs.
/// </summary>
public sealed class RpcServer(LoomworksHost host, string db) : ServerUnderTest(host)
{
    public const long BodyLimit = 256 * 1024;

    public string Db { get; } = db;

    /// <summary>The server's data_dir (its filestore is under filestore/&lt;db&gt;).</summary>
    public string DataDir => Host.DataDir;

    public static Task<RpcServer> StartAsync(PostgresFixture fixture, string name, params string[] extraTenants) =>
        StartAsync(fixture, name, new Dictionary<string, string>(), BodyLimit, extraTenants);

    /// <summary>As above, with more configuration keys (admin_passwd for the admin API, say).</summary>
    public static Task<RpcServer> StartAsync(PostgresFixture fixture, string name, IReadOnlyDictionary<string, string> extraSettings,
        params string[] extraTenants) =>
        StartAsync(fixture, name, extraSettings, BodyLimit, extraTenants);

    /// <summary>A server with extra configuration keys and its own body limit.</summary>
    public static Task<RpcServer> StartAsync(PostgresFixture fixture, string name, IReadOnlyDictionary<string, string> extraSettings,
        long bodyLimit, params string[] extraTenants) =>
        StartAsync(fixture, name, extraSettings, bodyLimit, configure: null, extraTenants);

    /// <summary>As above; <paramref name="configure"/> runs on the builder after the features (a fake clock, say).</summary>
    public static async Task<RpcServer> StartAsync(PostgresFixture fixture, string name, IReadOnlyDictionary<string, string> extraSettings,
        long bodyLimit, Action<WebApplicationBuilder>? configure, params string[] extraTenants)
    {
        var (host, _) = await StartWithManagementAsync(fixture, name, (options, management) =>
        {
            options.Set(extraSettings);
            options.Builder = builder =>
            {
                builder.Services.AddSingleton(new RpcOptions { MaxBodyBytes = bodyLimit });
                configure?.Invoke(builder);
            };
            options.BeforeStart = async _ =>
            {
                foreach (var db in new[] { name }.Concat(extraTenants))
                {
                    await CreateTenantAsync(fixture, management, db);
                }
            };
        });
        return new RpcServer(host, name);
    }

    private static async Task CreateTenantAsync(PostgresFixture fixture, string management, string db)
    {
        await fixture.CreateDatabaseAsync(db);
        await using (var connection = await Sql.OpenUnpooledAsync(fixture.Endpoint, db))
        {
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(connection, setup.Migrations, CancellationToken.None);
            await setup.CreateAdminUserAsync(connection, "admin", Passwords.Hash("admin"), CancellationToken.None);
        }
        await fixture.ExecuteAsync(management,
            "INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $2, $1, 'active')", db, db.Replace('_', '-'));
    }
}

/// <summary>One server per test class: xunit makes a class instance per test, so the server lives in a class fixture.</summary>
public abstract class RpcServerFixture(PostgresFixture postgres, string name, params string[] extraTenants) : IAsyncLifetime
{
    public RpcServer Server { get; private set; } = null!;
    public PostgresFixture Postgres => postgres;

    public async ValueTask InitializeAsync()
    {
        Server = await RpcServer.StartAsync(postgres, name, new Dictionary<string, string>(), RpcServer.BodyLimit, Configure, extraTenants);
        await SeedAsync();
    }

    /// <summary>Runs on the builder after the features: a class replaces a service here.</summary>
    protected virtual void Configure(WebApplicationBuilder builder)
    {
    }

    protected virtual Task SeedAsync() => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
