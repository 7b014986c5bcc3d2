using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One <see cref="NpgsqlDataSource"/> per database, created on first use and reused, under a global connection
/// budget (db_maxconn): each pool may hold <see cref="PerDatabaseMaxConnections"/> connections and at most
/// budget / that many pools are open; opening one more closes the least recently used. Pinned databases (the
/// management database) are never evicted. Every feature that works in a tenant database gets its connections
/// here, never from a connection string of its own.
/// </summary>
public sealed class TenantDataSources : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _byName = new(StringComparer.Ordinal);
    // Most recently used first; eviction takes from the end.
    private readonly LinkedList<Entry> _recency = new();
    private readonly HashSet<string> _pinned;
    private readonly TimeSpan _drainGrace;
    private long _evictions;

    private sealed record Entry(string Name, NpgsqlDataSource DataSource);

    public TenantDataSources(PostgresEndpoint endpoint, int maxConnections = 64, IEnumerable<string>? pinned = null,
        TimeSpan? drainGrace = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 2);
        Endpoint = endpoint;
        MaxConnections = maxConnections;
        // Eight connections serve one tenant's concurrent requests; a small budget still gets two pools.
        PerDatabaseMaxConnections = Math.Clamp(maxConnections / 8, 1, 8);
        MaxPools = Math.Max(2, maxConnections / PerDatabaseMaxConnections);
        _pinned = new HashSet<string>(pinned ?? [], StringComparer.Ordinal);
        _drainGrace = drainGrace ?? TimeSpan.FromSeconds(30);
    }

    public PostgresEndpoint Endpoint { get; }
    public int MaxConnections { get; }
    public int PerDatabaseMaxConnections { get; }
    public int MaxPools { get; }
    public long Evictions => Interlocked.Read(ref _evictions);

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byName.Count;
            }
        }
    }

    public NpgsqlDataSource For(string databaseName)
    {
        Entry? evicted = null;
        NpgsqlDataSource result;
        lock (_lock)
        {
            if (_byName.TryGetValue(databaseName, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                return node.Value.DataSource;
            }
            if (_byName.Count >= MaxPools)
            {
                var victim = _recency.Last;
                while (victim is not null && _pinned.Contains(victim.Value.Name))
                {
                    victim = victim.Previous;
                }
                if (victim is not null)
                {
                    _recency.Remove(victim);
                    _byName.Remove(victim.Value.Name);
                    evicted = victim.Value;
                }
            }
            var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString(databaseName))
            {
                MaxPoolSize = PerDatabaseMaxConnections,
                MinPoolSize = 0,
                // Idle connections go back to the budget quickly; a busy tenant keeps its pool warm.
                ConnectionIdleLifetime = 60,
                // The same few statements run on every call (the security stamp, access rights, the ORM's queries):
                // prepared on their second use, they skip parsing and planning. PgBouncer in transaction mode needs
                // max_prepared_statements (1.21 or later) for this.
                MaxAutoPrepare = 64,
                AutoPrepareMinUsages = 2,
            };
            result = NpgsqlDataSource.Create(builder.ConnectionString);
            _byName[databaseName] = _recency.AddFirst(new Entry(databaseName, result));
        }
        if (evicted is not null)
        {
            Interlocked.Increment(ref _evictions);
            // Idle connections close now; connections a request still holds close when it returns them, and the
            // pool itself is disposed after a grace so a caller holding the data source does not see it vanish.
            evicted.DataSource.Clear();
            _ = DisposeLaterAsync(evicted.DataSource);
        }
        return result;
    }

    /// <summary>A connection outside every pool, for LISTEN: it stays open for the life of the listener.</summary>
    public NpgsqlConnection CreateDedicatedConnection(string databaseName, string applicationName)
    {
        var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString(databaseName, applicationName))
        {
            Pooling = false,
            KeepAlive = 15,
            Timeout = 5,
        };
        return new NpgsqlConnection(builder.ConnectionString);
    }

    /// <summary>Closes the pool of a database about to be dropped, renamed or restored.</summary>
    public async Task EvictAsync(string databaseName)
    {
        Entry? entry = null;
        lock (_lock)
        {
            if (_byName.Remove(databaseName, out var node))
            {
                _recency.Remove(node);
                entry = node.Value;
            }
        }
        if (entry is not null)
        {
            await entry.DataSource.DisposeAsync();
        }
    }

    private async Task DisposeLaterAsync(NpgsqlDataSource dataSource)
    {
        await Task.Delay(_drainGrace);
        await dataSource.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        List<Entry> entries;
        lock (_lock)
        {
            entries = [.. _recency];
            _recency.Clear();
            _byName.Clear();
        }
        foreach (var entry in entries)
        {
            await entry.DataSource.DisposeAsync();
        }
    }
}
