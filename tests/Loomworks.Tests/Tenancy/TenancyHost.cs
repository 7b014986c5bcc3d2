using System.Net.Http.Headers;
using System.Text;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;

namespace Loomworks.Tests.Tenancy;

/// <summary>
/// A <see cref="LoomworksHost"/> against the run's cluster (reached through its socket directory) and a management
/// database of the test's own, handed out once the tenant change listener listens.
/// </summary>
public sealed class TenancyHost : IAsyncDisposable
{
    private TenancyHost(LoomworksHost host)
    {
        Host = host;
        Client = host.CreateClient(cookies: false);
    }

    public LoomworksHost Host { get; }
    public WebApplication App => Host.App;
    public HttpClient Client { get; }
    public LoomworksSettings Settings => Host.Settings;
    public T Get<T>() where T : notnull => Host.Get<T>();

    /// <summary>The keys that reach the run's cluster with a management database of the test's own, for the CLI.</summary>
    public static Dictionary<string, string> BaseSettings(PostgresFixture postgres, string managementDatabase) => new()
    {
        ["db_host"] = postgres.Cluster.SocketDir,
        ["db_port"] = postgres.Cluster.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["db_user"] = EmbeddedCluster.Superuser,
        ["loomworks_mgmt_db"] = managementDatabase,
        ["http_port"] = Scratch.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["http_interface"] = "127.0.0.1",
        ["log_level"] = "warn",
    };

    public static async Task<TenancyHost> StartAsync(PostgresFixture postgres, string managementDatabase,
        IReadOnlyDictionary<string, string>? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(postgres);
        var host = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(postgres.Endpoint).Set("loomworks_mgmt_db", managementDatabase).Set(overrides);
            options.MigrateManagement = true;
            options.WaitForTenantListener = true;
        });
        return new TenancyHost(host);
    }

    public static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Host.DisposeAsync();
    }
}
