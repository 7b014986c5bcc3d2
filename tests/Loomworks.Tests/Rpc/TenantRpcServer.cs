using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// A <see cref="LoomworksHost"/> with its own management database, data directory, a master password and the base
/// domain <see cref="BaseDomain"/>; tenants are made by Tenancy's provisioner (own login role, admin/admin).
/// </summary>
public sealed class TenantRpcServer : IAsyncDisposable
{
    public const string MasterPassword = "rpc-master-secret";
    public const string BaseDomain = "rpcten.test";

    private TenantRpcServer(LoomworksHost host, string management)
    {
        Host = host;
        Management = management;
    }

    public LoomworksHost Host { get; }
    public WebApplication App => Host.App;
    public PostgresServer Postgres => Host.Postgres;
    public string Url => Host.Url;
    public string Management { get; }

    public T Service<T>() where T : notnull => Host.Get<T>();

    public static async Task<TenantRpcServer> StartAsync(PostgresFixture fixture, string name, Dictionary<string, string>? extra = null,
        params string[] tenants)
    {
        ArgumentNullException.ThrowIfNull(fixture);
        var management = await fixture.CreateDatabaseAsync(name + "_mgmt");
        var host = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(fixture.Endpoint)
                .Set("loomworks_mgmt_db", management)
                .Set("admin_passwd", MasterPassword)
                .Set("loomworks_base_domain", BaseDomain)
                .Set(extra);
            options.MigrateManagement = true;
            options.BeforeStart = async services =>
            {
                var provisioner = (TenantProvisioner)services.GetService(typeof(TenantProvisioner))!;
                foreach (var tenant in tenants)
                {
                    await provisioner.CreateAsync(new TenantRequest(tenant, tenant, "admin", "admin"), CancellationToken.None);
                }
            };
        });
        return new TenantRpcServer(host, management);
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
