using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Tests.Infrastructure;

/// <summary>
/// One throwaway PostgreSQL cluster for the whole test run, started by the same code as the embedded default.
/// Tests work in databases named after themselves and never assert global counts.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private readonly Scratch _scratch = new("pg");
    private readonly List<TenantDataSources> _dataSources = [];

    public EmbeddedCluster Cluster { get; private set; } = null!;
    public PostgresEndpoint Endpoint => Cluster.Endpoint;

    public async ValueTask InitializeAsync()
    {
        Cluster = new EmbeddedCluster(new EmbeddedClusterOptions
        {
            DataDir = _scratch.Path,
            Port = Scratch.FreePort(),
            Durable = false,
            MaxConnections = 300,
        });
        await Cluster.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }
        await Scratch.StopAndDeleteAsync(Cluster, _scratch);
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

    /// <summary>A database on a connection budget of its own, as the server reaches a tenant.</summary>
    public PooledDatabase DataSource(string database)
    {
        var dataSources = new TenantDataSources(Endpoint, maxConnections: 100);
        lock (_dataSources)
        {
            _dataSources.Add(dataSources);
        }
        return dataSources.For(database);
    }

    public async Task ExecuteAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(Endpoint.ConnectionString(database) + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T?> ScalarAsync<T>(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(Endpoint.ConnectionString(database) + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresGroup : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
