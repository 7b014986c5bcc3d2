using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Builder;

namespace Loomworks.Tests.Infrastructure;

/// <summary>
/// A <see cref="LoomworksHost"/> as a test class sees it: the host, the parts of it tests reach for most, and the
/// start every such server shares (the run's cluster and a management database of its own, migrated).
/// </summary>
public abstract class ServerUnderTest(LoomworksHost host) : IAsyncDisposable
{
    public LoomworksHost Host { get; } = host;
    public WebApplication App => Host.App;
    public PostgresServer Postgres => Host.Postgres;
    public string Url => Host.Url;

    /// <summary>
    /// Creates the database <paramref name="name"/>_mgmt and starts a host on the run's cluster with it as the
    /// migrated management database; <paramref name="configure"/> adds keys and hooks, given that database's name.
    /// </summary>
    protected static async Task<(LoomworksHost Host, string Management)> StartWithManagementAsync(PostgresFixture fixture,
        string name, Action<LoomworksHostOptions, string> configure)
    {
        ArgumentNullException.ThrowIfNull(fixture);
        var management = await fixture.CreateDatabaseAsync(name + "_mgmt");
        var host = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(fixture.Endpoint).Set("loomworks_mgmt_db", management);
            options.MigrateManagement = true;
            configure(options, management);
        });
        return (host, management);
    }

    /// <summary>
    /// <see cref="StartWithManagementAsync"/> with a master password and a base domain, the tenants
    /// <paramref name="tenants"/> (login admin/admin) provisioned before the host serves, and <paramref name="extra"/> keys.
    /// </summary>
    protected static Task<(LoomworksHost Host, string Management)> StartWithTenantsAsync(PostgresFixture fixture, string name,
        string masterPassword, string baseDomain, Dictionary<string, string>? extra, IReadOnlyList<string> tenants) =>
        StartWithManagementAsync(fixture, name, (options, _) =>
        {
            options.Set("admin_passwd", masterPassword).Set("loomworks_base_domain", baseDomain).Set(extra);
            options.BeforeStart = async services =>
            {
                var provisioner = (TenantProvisioner)services.GetService(typeof(TenantProvisioner))!;
                foreach (var tenant in tenants)
                {
                    await provisioner.CreateAsync(new TenantRequest(tenant, tenant, "admin", "admin"), CancellationToken.None);
                }
            };
        });

    public async ValueTask DisposeAsync()
    {
        await DisposeCoreAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the server holds; a subclass that holds more releases it before the host.</summary>
    protected virtual ValueTask DisposeCoreAsync() => Host.DisposeAsync();
}
