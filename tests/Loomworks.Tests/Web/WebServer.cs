using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Web;

/// <summary>
/// A Loomworks host for the browser tests: its own management database and data directory, a master password, and
/// tenants (admin/admin) reached at http://&lt;subdomain&gt;.<see cref="BaseDomain"/>:port, a name the test browser
/// resolves to this machine.
/// </summary>
public sealed class WebServer(LoomworksHost host, string management) : ServerUnderTest(host)
{
    public const string MasterPassword = "web-master-secret";
    public const string BaseDomain = "webcon.test";

    public string Management { get; } = management;

    /// <summary>The bare address: no tenant is named by it.</summary>
    public string BareUrl => Url;

    public string TenantUrl(string subdomain) => $"http://{subdomain}.{BaseDomain}:{Host.Port}";

    public T Service<T>() where T : notnull => Host.Get<T>();

    public static async Task<WebServer> StartAsync(PostgresFixture fixture, string name, Dictionary<string, string>? extra = null,
        params string[] tenants)
    {
        var (host, management) = await StartWithTenantsAsync(fixture, name, MasterPassword, BaseDomain, extra, tenants);
        return new WebServer(host, management);
    }
}
