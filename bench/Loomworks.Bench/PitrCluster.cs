using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Bench;

/// <summary>An embedded cluster with pgBackRest set up as the server does it, for the snapshot and restore scenarios.</summary>
public sealed class PitrCluster : IAsyncDisposable
{
    private readonly Scratch _scratch = new("bench", giveToServerUser: true);
    private ILoggerFactory _loggers = NullLoggerFactory.Instance;

    private PitrCluster()
    {
    }

    public LoomworksSettings Settings { get; private set; } = null!;
    public PostgresServer Server { get; private set; } = null!;
    public TenantDataSources DataSources { get; private set; } = null!;
    public ManagementDatabase Management { get; private set; } = null!;
    public SnapshotsFeature Feature { get; private set; } = null!;
    public string Path => _scratch.Path;

    /// <summary>The restores' phase timings, as they log them.</summary>
    public RestorePhases Phases { get; } = new();

    public static async Task<PitrCluster> StartAsync(int port)
    {
        var cluster = new PitrCluster();
        cluster.Settings = LoomworksSettings.Defaults(new Dictionary<string, string>
        {
            ["data_dir"] = cluster._scratch.Path,
            ["db_port"] = port.ToString(CultureInfo.InvariantCulture),
            // A throwaway cluster: its marker goes with it rather than into the machine's /var/lib/loomworks.state.
            ["loomworks_state_dir"] = System.IO.Path.Combine(cluster._scratch.Path, "state"),
        });
        cluster.Server = await PostgresServer.OpenAsync(cluster.Settings, NullLogger.Instance, ClusterCreation.FirstStart);
        await DatabaseAdmin.EnsureDatabaseAsync(cluster.Server.Endpoint, cluster.Settings.ManagementDatabase, CancellationToken.None);
        (cluster.DataSources, cluster.Management) = ManagementDatabase.Open(cluster.Server.Endpoint, cluster.Settings.ManagementDatabase,
            ManagementMigrations.All);
        await cluster.Management.MigrateAsync(CancellationToken.None);
        // The restore's phase timings go to the console: they say where a slow run spent its time.
        cluster._loggers = LoggerFactory.Create(logging => logging
            .AddSimpleConsole(console => console.SingleLine = true)
            .AddProvider(cluster.Phases)
            .AddFilter((category, level) => level >= LogLevel.Warning
                || (level >= LogLevel.Information && category == typeof(TenantRestore).FullName)));
        cluster.Feature = SnapshotsFeature.Create(cluster.Settings, cluster.Server, cluster.DataSources, cluster.Management,
            new TenantStore(cluster.Management), cluster._loggers);
        await cluster.Feature.StartAsync(embedded: true, NullLogger.Instance, CancellationToken.None);
        return cluster;
    }

    /// <summary>A tenant database with one table of about <paramref name="megabytes"/> MB, registered as active.</summary>
    public async Task CreateTenantAsync(string name, int megabytes)
    {
        await ExecuteAsync("postgres", $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(name)}");
        await using (var command = Management.DataSource.CreateCommand(
            "INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $1, $1, 'active')"))
        {
            command.Parameters.AddWithValue(name);
            await command.ExecuteNonQueryAsync();
        }
        // About 1 KB a row with its index.
        await ExecuteAsync(name, $"""
            CREATE TABLE record (id bigserial PRIMARY KEY, body text NOT NULL);
            INSERT INTO record (body) SELECT repeat(md5(g::text), 28) FROM generate_series(1, {megabytes * 1000}) g;
            """);
    }

    public Task ExecuteAsync(string database, string sql) => DataSources.For(database).ExecuteAsync(sql, TimeSpan.FromHours(1));

    public async ValueTask DisposeAsync()
    {
        Feature.BackRest.Dispose();
        await DataSources.DisposeAsync();
        await Server.DisposeAsync();
        _loggers.Dispose();
        _scratch.Dispose();
    }
}

/// <summary>
/// Collects the phase timings each restore job logs ("Restore job {Job}: {Phase} took {Milliseconds} ms, {LowMilliseconds}
/// ms of it at low priority"), read from the log's own fields, so the bench reports a restore's phases beside its total.
/// </summary>
public sealed class RestorePhases : ILoggerProvider
{
    private readonly Dictionary<long, List<(string Phase, double Milliseconds, double LowMilliseconds)>> _jobs = [];

    /// <summary>The phases of <paramref name="job"/> in the order they ended.</summary>
    public IReadOnlyList<(string Phase, double Milliseconds, double LowMilliseconds)> Of(long job)
    {
        lock (_jobs)
        {
            return _jobs.TryGetValue(job, out var phases) ? [.. phases] : [];
        }
    }

    public ILogger CreateLogger(string categoryName) => new Recorder(this);

    public void Dispose()
    {
    }

    private sealed class Recorder(RestorePhases phases) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            if (state is not IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                return;
            }
            var values = fields.ToDictionary(f => f.Key, f => f.Value);
            if (values.GetValueOrDefault("Job") is long job && values.GetValueOrDefault("Phase") is string phase
                && values.GetValueOrDefault("Milliseconds") is long milliseconds
                && values.GetValueOrDefault("LowMilliseconds") is long low)
            {
                lock (phases._jobs)
                {
                    if (!phases._jobs.TryGetValue(job, out var list))
                    {
                        phases._jobs[job] = list = [];
                    }
                    list.Add((phase, milliseconds, low));
                }
            }
        }
    }
}
