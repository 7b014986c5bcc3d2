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
        var (host, management) = await StartWithTenantsAsync(fixture, name, MasterPassword, BaseDomain, extra, tenants);
        return new TenantRpcServer(host, management);
    }
}
