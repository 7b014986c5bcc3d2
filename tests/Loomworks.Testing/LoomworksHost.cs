using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Testing;

/// <summary>
/// The real Loomworks web server in this process, built by <see cref="LoomworksWebApp.Build"/> as the server command
/// builds it, listening on 127.0.0.1 and a free port. The one way the tests and the bench start a host.
/// </summary>
public sealed class LoomworksHost : IAsyncDisposable
{
    private readonly bool _ownsServer;
    private readonly Scratch? _ownDataDir;

    private LoomworksHost(WebApplication app, LoomworksSettings settings, IReadOnlyDictionary<string, string> values,
        PostgresServer postgres, bool ownsServer, Scratch? ownDataDir)
    {
        App = app;
        Settings = settings;
        Postgres = postgres;
        _ownsServer = ownsServer;
        _ownDataDir = ownDataDir;
        Port = int.Parse(values["http_port"], CultureInfo.InvariantCulture);
        Url = $"http://127.0.0.1:{values["http_port"]}";
        DataDir = values["data_dir"];
    }

    public WebApplication App { get; }
    public IServiceProvider Services => App.Services;
    public LoomworksSettings Settings { get; }
    public PostgresServer Postgres { get; }

    public int Port { get; }

    /// <summary>http://127.0.0.1:port, without a trailing slash.</summary>
    public string Url { get; }

    /// <summary>The host's data_dir (its filestore is under filestore/&lt;db&gt;).</summary>
    public string DataDir { get; }

    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

    /// <summary>A client with this host as its base address; without cookies or redirects when asked.</summary>
    public HttpClient CreateClient(bool cookies = true, bool redirects = true) =>
        new(new HttpClientHandler { UseCookies = cookies, AllowAutoRedirect = redirects }) { BaseAddress = new Uri(Url) };

    /// <summary>Builds and starts a host; <paramref name="configure"/> says which cluster, which keys and which hooks.</summary>
    public static async Task<LoomworksHost> StartAsync(Action<LoomworksHostOptions> configure,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new LoomworksHostOptions();
        configure(options);
        var values = options.Settings;
        values.TryAdd("http_port", Scratch.FreePort().ToString(CultureInfo.InvariantCulture));
        var ownDataDir = values.ContainsKey("data_dir") ? null : new Scratch("host");
        if (ownDataDir is not null)
        {
            values["data_dir"] = ownDataDir.Path;
        }
        var settings = LoomworksSettings.Defaults(values);
        PostgresServer? postgres = null;
        WebApplication? app = null;
        try
        {
            postgres = options.Server ?? await PostgresServer.OpenAsync(settings, NullLogger.Instance, cancellationToken);
            if (options.MigrateManagement)
            {
                await DatabaseAdmin.EnsureDatabaseAsync(postgres.Endpoint, settings.ManagementDatabase, cancellationToken);
            }
            app = LoomworksWebApp.Build(settings, postgres, options.Builder);
            if (options.MigrateManagement)
            {
                await app.Services.GetRequiredService<ManagementDatabase>().MigrateAsync(cancellationToken);
            }
            options.App?.Invoke(app);
            if (options.BeforeStart is not null)
            {
                await options.BeforeStart(app.Services);
            }
            await app.StartAsync(cancellationToken);
            if (options.WaitForTenantListener)
            {
                await app.Services.GetRequiredService<TenantChangeListener>().WaitUntilListeningAsync(TimeSpan.FromSeconds(10));
            }
            return new LoomworksHost(app, settings, values, postgres, ownsServer: options.Server is null, ownDataDir);
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }
            if (postgres is not null && options.Server is null)
            {
                await postgres.DisposeAsync();
            }
            ownDataDir?.Dispose();
            throw;
        }
    }

    /// <summary>Stops listening, as a server shutting down does; dispose afterwards all the same.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => App.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        if (_ownsServer)
        {
            await Postgres.DisposeAsync();
        }
        _ownDataDir?.Dispose();
    }
}
