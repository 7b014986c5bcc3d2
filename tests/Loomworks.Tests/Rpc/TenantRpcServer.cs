using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// The real web server in-process with its own management database, data directory, a master password and the
/// base domain <see cref="BaseDomain"/>; tenants are made by Tenancy's provisioner (own login role, admin/admin).
/// </summary>
public sealed class TenantRpcServer : IAsyncDisposable
{
    public const string MasterPassword = "rpc-master-secret";
    public const string BaseDomain = "rpcten.test";

    private TenantRpcServer(WebApplication app, PostgresServer postgres, Scratch scratch, string url, string management)
    {
        App = app;
        Postgres = postgres;
        Scratch = scratch;
        Url = url;
        Management = management;
    }

    public WebApplication App { get; }
    public PostgresServer Postgres { get; }
    public Scratch Scratch { get; }
    public string Url { get; }
    public string Management { get; }

    public T Service<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public static async Task<TenantRpcServer> StartAsync(PostgresFixture fixture, string name, Dictionary<string, string>? extra = null,
        params string[] tenants)
    {
        var management = await fixture.CreateDatabaseAsync(name + "_mgmt");
        var scratch = new Scratch("rpcten");
        var port = Scratch.FreePort();
        var values = new Dictionary<string, string>
        {
            ["db_host"] = fixture.Endpoint.Host,
            ["db_port"] = fixture.Endpoint.Port.ToString(CultureInfo.InvariantCulture),
            ["db_user"] = fixture.Endpoint.Username,
            ["http_interface"] = "127.0.0.1",
            ["http_port"] = port.ToString(CultureInfo.InvariantCulture),
            ["loomworks_mgmt_db"] = management,
            ["data_dir"] = scratch.Path,
            ["admin_passwd"] = MasterPassword,
            ["loomworks_base_domain"] = BaseDomain,
            ["log_level"] = "warn",
        };
        foreach (var (key, value) in extra ?? [])
        {
            values[key] = value;
        }
        var settings = LoomworksSettings.Defaults(values);
        var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance);
        var app = LoomworksWebApp.Build(settings, postgres);
        await app.Services.GetRequiredService<ManagementDatabase>().MigrateAsync(CancellationToken.None);
        var provisioner = app.Services.GetRequiredService<TenantProvisioner>();
        foreach (var tenant in tenants)
        {
            await provisioner.CreateAsync(new TenantRequest(tenant, tenant, "admin", "admin"), CancellationToken.None);
        }
        await app.StartAsync();
        return new TenantRpcServer(app, postgres, scratch, $"http://127.0.0.1:{port}", management);
    }

    /// <summary>Waits until <paramref name="condition"/> holds (a NOTIFY reaching the cache, say), at most five seconds.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 100; i++)
        {
            if (await condition())
            {
                return true;
            }
            await Task.Delay(50);
        }
        return false;
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        await Postgres.DisposeAsync();
        Scratch.Dispose();
    }
}
