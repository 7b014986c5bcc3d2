using Loomworks.Postgres;

namespace Loomworks.Testing;

/// <summary>
/// A PostgreSQL cluster in a scratch folder, started by the same code as the embedded default and removed with its
/// folder on dispose. The tests start one for the whole run; work in it goes into databases named after the test.
/// </summary>
public class ThrowawayCluster : IAsyncDisposable
{
    private readonly Scratch _scratch;
    private readonly Func<string, EmbeddedClusterOptions> _options;
    private readonly List<TenantDataSources> _dataSources = [];

    /// <param name="options">The cluster's options for a data folder; by default a non-durable cluster on a free port.</param>
    /// <param name="purpose">A word in the scratch folder's name.</param>
    /// <param name="giveToServerUser">Hands the folder to the postgres user when running as root.</param>
    public ThrowawayCluster(Func<string, EmbeddedClusterOptions>? options = null, string purpose = "pg", bool giveToServerUser = false)
    {
        _scratch = new Scratch(purpose, giveToServerUser);
        _options = options ?? (dataDir => new EmbeddedClusterOptions
        {
            DataDir = dataDir,
            Port = Scratch.FreePort(),
            Durable = false,
            MaxConnections = 300,
        });
    }

    public EmbeddedCluster Cluster { get; private set; } = null!;
    public PostgresEndpoint Endpoint => Cluster.Endpoint;

    /// <summary>The scratch folder that holds the cluster.</summary>
    public string Folder => _scratch.Path;

    /// <summary>A cluster started with <paramref name="options"/> (see the constructor).</summary>
    public static async Task<ThrowawayCluster> StartAsync(Func<string, EmbeddedClusterOptions>? options = null,
        CancellationToken cancellationToken = default)
    {
        var cluster = new ThrowawayCluster(options, "bench", giveToServerUser: true);
        try
        {
            await cluster.StartAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        Cluster = new EmbeddedCluster(_options(_scratch.Path));
        await Cluster.StartAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }
        if (Cluster is not null)
        {
            await Cluster.StopAsync();
        }
        _scratch.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A fresh, empty database: dropped first if an earlier run left it behind.</summary>
    public async Task<string> CreateDatabaseAsync(string name)
    {
        await DropDatabaseAsync(name);
        await ExecuteAsync("postgres", $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(name)}");
        return name;
    }

    public Task DropDatabaseAsync(string name) =>
        ExecuteAsync("postgres", $"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(name)} WITH (FORCE)");

    /// <summary>A database on a connection budget of its own, as the server reaches a tenant; closed with the cluster.</summary>
    public PooledDatabase DataSource(string database)
    {
        var dataSources = new TenantDataSources(Endpoint, maxConnections: 100);
        lock (_dataSources)
        {
            _dataSources.Add(dataSources);
        }
        return dataSources.For(database);
    }

    public Task ExecuteAsync(string database, string sql, params object[] parameters) =>
        Sql.ExecuteAsync(Endpoint, database, sql, parameters);

    public Task<T?> ScalarAsync<T>(string database, string sql, params object[] parameters) =>
        Sql.ScalarAsync<T>(Endpoint, database, sql, parameters);
}
