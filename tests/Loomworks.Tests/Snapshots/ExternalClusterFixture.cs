using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// A throwaway cluster that Loomworks reaches as an operator's own server (db_host = its socket directory), not as its
/// embedded cluster: archive_command '/bin/true' and archive_timeout 0, as an unconfigured server has them. Loomworks'
/// data_dir is a separate folder.
/// </summary>
public sealed class ExternalClusterFixture : IAsyncLifetime
{
    private readonly Scratch _serverDir = new("extpg");
    private readonly Scratch _loomworksDir = new("extlw");

    public EmbeddedCluster Cluster { get; private set; } = null!;
    public PostgresServer Server { get; private set; } = null!;
    public TenantDataSources DataSources { get; private set; } = null!;
    public ManagementDatabase Management { get; private set; } = null!;
    public TenantStore Tenants { get; private set; } = null!;
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

    public async Task CreateTenantAsync(string subdomain, string sql)
    {
        var quoted = DatabaseAdmin.QuoteIdentifier(subdomain);
        await ExecuteAsync("postgres", $"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)");
        await ExecuteAsync("postgres", $"CREATE DATABASE {quoted}");
        await using (var command = Management.DataSource.CreateCommand("""
            INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $1, $1, 'active')
            ON CONFLICT (subdomain) DO UPDATE SET state = 'active'
            """))
        {
            command.Parameters.AddWithValue(subdomain);
            await command.ExecuteNonQueryAsync();
        }
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

    public Task ExecuteAsync(string database, string sql) => DataSources.For(database).ExecuteAsync(sql);

    public async Task<T> ScalarAsync<T>(string database, string sql) => (await DataSources.For(database).ScalarAsync<T>(sql))!;

    private async Task OpenAsync()
    {
        var settings = LoomworksSettings.Defaults(BaseSettings);
        Server = await PostgresServer.OpenAsync(settings, NullLogger.Instance);
        Assert.Null(Server.Embedded);
        await DatabaseAdmin.EnsureDatabaseAsync(Server.Endpoint, settings.ManagementDatabase, CancellationToken.None);
        (DataSources, Management) = ManagementDatabase.Open(Server.Endpoint, settings.ManagementDatabase, ManagementMigrations.All);
        await Management.MigrateAsync(CancellationToken.None);
        Tenants = new TenantStore(Management);
    }
}
