using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// A cluster of its own with pgBackRest set up exactly as the server does on first start (stanza, first full backup),
/// shared by the PITR tests of one class. Tenants are made directly: a database and a row in loomworks_tenant.
/// </summary>
public sealed class PitrFixture : ManagedClusterFixture, IAsyncLifetime
{
    private readonly Scratch _scratch = new("pitr");
    private readonly Scratch _state = new("pitr-state");
    private Dictionary<string, string> _settings = [];

    public LoomworksSettings Settings { get; private set; } = null!;
    public SnapshotsFeature Feature { get; private set; } = null!;
    public string DataDir => _scratch.Path;

    public async ValueTask InitializeAsync()
    {
        _settings = new Dictionary<string, string>
        {
            ["data_dir"] = _scratch.Path,
            ["db_port"] = Scratch.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["loomworks_archive_timeout"] = "30",
            ["loomworks_state_dir"] = _state.Path,
        };
        Settings = LoomworksSettings.Defaults(_settings);
        Server = await PostgresServer.OpenAsync(Settings, NullLogger.Instance, ClusterCreation.FirstStart);
        await OpenManagementAsync(Settings);
        Feature = SnapshotsFeature.Create(Settings, Server, DataSources, Management, Tenants, NullLoggerFactory.Instance);
        await Feature.StartAsync(embedded: true, NullLogger.Instance, CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        await DataSources.DisposeAsync();
        await Server.DisposeAsync();
        Feature.BackRest.Dispose();
        _scratch.Dispose();
        _state.Dispose();
    }

    /// <summary>A tenant made the way provisioning will: its database and an active row (dropped first if left over).</summary>
    public async Task<Tenant> CreateTenantAsync(string subdomain)
    {
        await CreateTenantDatabaseAsync(subdomain);
        return (await Tenants.FindBySubdomainAsync(subdomain, CancellationToken.None))!;
    }

    /// <summary>The same settings with one more key, as command-line options of the real executable.</summary>
    public string[] CliOptions() =>
        [.. _settings.SelectMany(kv => new[] { "--" + kv.Key.Replace('_', '-'), kv.Value })];

    /// <summary>A second snapshot feature on this cluster whose settings add <paramref name="keys"/> (dispose its BackRest).</summary>
    public SnapshotsFeature FeatureWith(params (string Key, string Value)[] keys)
    {
        var settings = new Dictionary<string, string>(_settings);
        foreach (var (key, value) in keys)
        {
            settings[key] = value;
        }
        return SnapshotsFeature.Create(LoomworksSettings.Defaults(settings), Server, DataSources, Management, Tenants,
            NullLoggerFactory.Instance);
    }

    /// <summary>Whether a process whose command line mentions <paramref name="text"/> is running.</summary>
    public static bool ProcessMentions(string text) => Directory.GetDirectories("/proc").Any(dir =>
    {
        try
        {
            return File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(text, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    });

    /// <summary>Every table of the public schema and its rows, as text: equal strings mean equal data.</summary>
    public async Task<string> ContentAsync(string database)
    {
        await DataSources.EvictAsync(database);
        var tables = new List<string>();
        await using (var list = DataSources.For(database).CreateCommand(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }
        var text = new System.Text.StringBuilder();
        foreach (var table in tables)
        {
            text.Append(table).Append(": ");
            text.Append(await ScalarAsync<string?>(database,
                $"SELECT coalesce(string_agg(t::text, ',' ORDER BY t::text), '') FROM {DatabaseAdmin.QuoteIdentifier(table)} t"));
            text.AppendLine();
        }
        return text.ToString();
    }

    /// <summary>No scratch folder and no PostgreSQL process started from one is left.</summary>
    public bool ScratchIsClean() =>
        new[] { Feature.Restore.ScratchRoot, Feature.Restore.MemoryRoot }.OfType<string>().All(root =>
            !(Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any()) && !ProcessMentions(root));

    public Task<bool> DatabaseExistsAsync(string name) =>
        ScalarAsync<bool>("postgres",
            $"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name.Replace("'", "''", StringComparison.Ordinal)}')");

    public PooledDatabase For(string database) => DataSources.For(database);
}
