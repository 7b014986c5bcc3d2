using System.Collections.Concurrent;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One <see cref="NpgsqlDataSource"/> per database, created on first use and reused. Every feature that works in a
/// tenant database gets its connections here, never from a connection string of its own.
/// </summary>
public sealed class TenantDataSources(PostgresEndpoint endpoint) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, NpgsqlDataSource> _dataSources = new(StringComparer.Ordinal);

    public PostgresEndpoint Endpoint => endpoint;

    public NpgsqlDataSource For(string databaseName) =>
        _dataSources.GetOrAdd(databaseName, name => NpgsqlDataSource.Create(endpoint.ConnectionString(name)));

    /// <summary>Closes the pool of a database about to be dropped, renamed or restored.</summary>
    public async Task EvictAsync(string databaseName)
    {
        if (_dataSources.TryRemove(databaseName, out var dataSource))
        {
            await dataSource.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var dataSource in _dataSources.Values)
        {
            await dataSource.DisposeAsync();
        }
        _dataSources.Clear();
    }
}
