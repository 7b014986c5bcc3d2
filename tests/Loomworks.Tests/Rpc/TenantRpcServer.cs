using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// A <see cref="LoomworksHost"/> with its own management database, data directory, a master password and the base
/// domain <see cref="BaseDomain"/>; tenants are made by Tenancy's provisioner (own login role, admin/admin).
/// </summary>
public sealed class TenantRpcServer(LoomworksHost host, string management) : ServerUnderTest(host)
{
    public const string MasterPassword = "rpc-master-secret";
    public const string BaseDomain = "rpcten.test";

    public string Management { get; } = management;

    public T Service<T>() where T : notnull => Host.Get<T>();

    public static async Task<TenantRpcServer> StartAsync(PostgresFixture fixture, string name, Dictionary<string, string>? extra = null,
        params string[] tenants)
    {
        var (host, management) = await StartWithManagementAsync(fixture, name, (options, _) =>
        {
            options.Set("admin_passwd", MasterPassword).Set("loomworks_base_domain", BaseDomain).Set(extra);
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
}
