using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// A throwaway cluster that Loomworks reaches as an operator's own server (db_host = its socket directory), not as its
/// embedded cluster: archive_command '/bin/true' and archive_timeout 0, as an unconfigured server has them. Loomworks'
/// data_dir is a separate folder.
/// </summary>
public sealed class ExternalClusterFixture : ManagedClusterFixture, IAsyncLifetime
{
    private readonly Scratch _serverDir = new("extpg");
    private readonly Scratch _loomworksDir = new("extlw");

    public EmbeddedCluster Cluster { get; private set; } = null!;
    public string LoomworksDataDir => _loomworksDir.Path;
    public string ScratchFile(string name) => _loomworksDir.File(name);

    /// <summary>The keys that make Loomworks treat the cluster as an external server.</summary>
    public Dictionary<string, string> BaseSettings => new()
    {
        ["data_dir"] = _loomworksDir.Path,
        ["db_host"] = Cluster.SocketDir,
        ["db_port"] = Cluster.Port.ToString(CultureInfo.InvariantCulture),
        ["db_user"] = EmbeddedCluster.Superuser,
        ["loomworks_archive_timeout"] = "30",
    };

    public async ValueTask InitializeAsync()
    {
        Cluster = new EmbeddedCluster(new EmbeddedClusterOptions
        {
            DataDir = _serverDir.Path,
            Port = Scratch.FreePort(),
            ArchiveTimeoutSeconds = 0,
            Durable = false,
        });
        await Cluster.StartAsync();
        await OpenAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await DataSources.DisposeAsync();
        await Cluster.StopAsync();
        _serverDir.Dispose();
        _loomworksDir.Dispose();
    }

    /// <summary>Settings of the base plus <paramref name="extra"/>.</summary>
    public LoomworksSettings SettingsWith(params (string Key, string Value)[] extra)
    {
        var values = BaseSettings;
        foreach (var (key, value) in extra)
        {
            values[key] = value;
        }
        return LoomworksSettings.Defaults(values);
    }

    /// <summary>A snapshot feature as a Loomworks start with these settings builds it (dispose its BackRest).</summary>
    public SnapshotsFeature Feature(LoomworksSettings settings) =>
        SnapshotsFeature.Create(settings, Server, DataSources, Management, Tenants, NullLoggerFactory.Instance);

    /// <summary>A snapshot feature started as a Loomworks start on this server starts it (dispose its BackRest).</summary>
    public async Task<SnapshotsFeature> StartFeatureAsync(LoomworksSettings settings, CancellationToken cancellationToken = default)
    {
        var feature = Feature(settings);
        try
        {
            await feature.StartAsync(embedded: false, NullLogger.Instance, cancellationToken);
        }
        catch
        {
            feature.BackRest.Dispose();
            throw;
        }
        return feature;
    }

    /// <summary>Sets (or with null resets) a server setting that needs a restart, and restarts the server.</summary>
    public async Task SetAndRestartAsync(string setting, string? value)
    {
        await ExecuteAsync("postgres", value is null ? $"ALTER SYSTEM RESET {setting}" : $"ALTER SYSTEM SET {setting} = '{value}'");
        await DataSources.DisposeAsync();
        await Cluster.StopAsync();
        await Cluster.StartAsync();
        await OpenAsync();
    }

    public async Task<string> ShowAsync(string setting) => await ScalarAsync<string>("postgres", $"SHOW {setting}");

    /// <summary>postgresql.auto.conf, where ALTER SYSTEM writes: equal text means no setting was changed.</summary>
    public string AutoConf() => File.ReadAllText(Path.Combine(Cluster.PgData, "postgresql.auto.conf"));

    /// <summary>A tenant (database and active row) whose database then runs <paramref name="sql"/>.</summary>
    public async Task CreateTenantAsync(string subdomain, string sql)
    {
        await CreateTenantDatabaseAsync(subdomain);
        await ExecuteAsync(subdomain, sql);
    }

    /// <summary>The rows of the given tables as one text (a missing table reads as such): equal text, equal data.</summary>
    public async Task<string> RowsAsync(string database, params string[] tables)
    {
        await DataSources.EvictAsync(database);
        var parts = new List<string>();
        foreach (var table in tables)
        {
            var exists = await ScalarAsync<bool>(database, $"SELECT to_regclass('public.{table}') IS NOT NULL");
            parts.Add(table + "=" + (exists
                ? await ScalarAsync<string?>(database,
                    $"SELECT coalesce(string_agg(t::text, ';' ORDER BY t::text), '') FROM public.{table} t")
                : "(missing)"));
        }
        return string.Join('\n', parts);
    }

    private async Task OpenAsync()
    {
        var settings = LoomworksSettings.Defaults(BaseSettings);
        Server = await PostgresServer.OpenAsync(settings, NullLogger.Instance);
        Assert.Null(Server.Embedded);
        await OpenManagementAsync(settings);
    }
}
