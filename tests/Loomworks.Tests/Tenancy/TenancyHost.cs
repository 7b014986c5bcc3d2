using System.Net.Http.Headers;
using System.Text;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Loomworks.Tests.Tenancy;

/// <summary>A real Loomworks web server in this process, on a free port, against the fixture's cluster and a management database of the test's own.</summary>
public sealed class TenancyHost : IAsyncDisposable
{
    private TenancyHost(WebApplication app, HttpClient client, LoomworksSettings settings)
    {
        App = app;
        Client = client;
        Settings = settings;
    }

    public WebApplication App { get; }
    public HttpClient Client { get; }
    public LoomworksSettings Settings { get; }
    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

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
        var values = BaseSettings(postgres, managementDatabase);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            values[key] = value;
        }
        var settings = LoomworksSettings.Defaults(values);
        var server = await PostgresServer.OpenAsync(settings, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await DatabaseAdmin.EnsureDatabaseAsync(server.Endpoint, managementDatabase, default);
        var app = LoomworksWebApp.Build(settings, server);
        await app.Services.GetRequiredService<ManagementDatabase>().MigrateAsync(default);
        await app.StartAsync();
        await app.Services.GetRequiredService<TenantChangeListener>().WaitUntilListeningAsync(TimeSpan.FromSeconds(10));
        var client = new HttpClient(new HttpClientHandler { UseCookies = false }) { BaseAddress = new Uri($"http://127.0.0.1:{settings.HttpPort}") };
        return new TenancyHost(app, client, settings);
    }

    public static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    /// <summary>Polls until <paramref name="condition"/> holds; returns how long it took, or throws after <paramref name="timeout"/>.</summary>
    public static async Task<TimeSpan> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"condition not met within {timeout}");
            }
            await Task.Delay(20);
        }
        return watch.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
