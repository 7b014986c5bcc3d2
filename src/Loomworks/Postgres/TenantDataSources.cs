using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One <see cref="NpgsqlDataSource"/> per database, created on first use and reused, under one budget of
/// <see cref="MaxConnections"/> (db_maxconn) physical PostgreSQL connections for all databases together, as Odoo's pool
/// keeps it: a busy database keeps its idle connections, and when a database needs a new connection while the budget
/// is full, the idle connections of the database used least recently are closed to make room; a connection in use is
/// never closed. Pools are not limited in number: a pool that has had no connection and no use for a while is
/// disposed. Every feature that works in a tenant database gets its connections here, never from a connection string
/// of its own.
/// </summary>
public sealed partial class TenantDataSources : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Pool> _byName = new(StringComparer.Ordinal);
    private readonly HashSet<string> _pinned;
    // Physical connections open but waiting for room, and dedicated connections open now (both under _lock).
    private int _waiting;
    private int _dedicatedOpen;
    private readonly string _poolNamePrefix = $"loomworks-{Guid.NewGuid():N}/";
    private readonly TimeSpan _dormantAfter;
    private readonly Timer _dormantSweep;
    private readonly PoolCounts _counts;
    private readonly RestartWatch? _restartWatch;
    private long _evictions;
    private long _restartsSeen;
    private bool _disposed;

    private sealed class Pool(string database, NpgsqlDataSource dataSource, bool pinned)
    {
        public string Database { get; } = database;
        public NpgsqlDataSource DataSource { get; } = dataSource;
        public bool Pinned { get; } = pinned;
        public long LastUsed { get; set; } = Environment.TickCount64;
        public int Idle { get; set; }
        public int Used { get; set; }
        public int Total => Idle + Used;
    }

    /// <param name="endpoint">The server and login.</param>
    /// <param name="maxConnections">db_maxconn: physical connections of all pools together, the restart watch's included.</param>
    /// <param name="pinned">Databases whose pools are never disposed for being dormant (the management database).</param>
    /// <param name="waitTimeout">How long an open waits for a connection to come free when all are in use.</param>
    /// <param name="watchRestarts">Keep one connection that notices a server restart and clears every pool at once.</param>
    /// <param name="dormantAfter">How long a pool without connections stays before it is disposed.</param>
    public TenantDataSources(PostgresEndpoint endpoint, int maxConnections = 64, IEnumerable<string>? pinned = null,
        TimeSpan? waitTimeout = null, bool watchRestarts = true, TimeSpan? dormantAfter = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 2);
        Endpoint = endpoint;
        MaxConnections = maxConnections;
        WaitTimeout = waitTimeout ?? TimeSpan.FromSeconds(15);
        _pinned = new HashSet<string>(pinned ?? [], StringComparer.Ordinal);
        _dormantAfter = dormantAfter ?? TimeSpan.FromMinutes(10);
        _counts = new PoolCounts(_poolNamePrefix);
        if (watchRestarts)
        {
            _restartWatch = new RestartWatch(() => CreateDedicatedConnection("postgres", "loomworks-restart-watch"), OnServerLost);
        }
        // A single busy database may use every connection the budget leaves to pools.
        PerDatabaseMaxConnections = maxConnections - (_restartWatch is null ? 0 : 1);
        using (ExecutionContext.SuppressFlow())
        {
            _dormantSweep = new Timer(_ => SweepDormantPools(), null, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        }
    }

    public PostgresEndpoint Endpoint { get; }
    public int MaxConnections { get; }
    public int PerDatabaseMaxConnections { get; }
    public TimeSpan WaitTimeout { get; }

    /// <summary>Pools whose idle connections were closed to make room for another database.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Times the restart watch saw the server go away and cleared every pool.</summary>
    public long RestartsSeen => Interlocked.Read(ref _restartsSeen);

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

    /// <summary>Physical connections open (or opening) in all pools now, the restart watch's included.</summary>
    public int OpenConnections
    {
        get
        {
            lock (_lock)
            {
                return CountLocked();
            }
        }
    }

    public NpgsqlDataSource For(string databaseName)
    {
        lock (_lock)
        {
            if (_byName.TryGetValue(databaseName, out var pool))
            {
                pool.LastUsed = Environment.TickCount64;
                return pool.DataSource;
            }
            pool = new Pool(databaseName, Build(databaseName), _pinned.Contains(databaseName));
            _byName[databaseName] = pool;
            if (!_disposed)
            {
                _restartWatch?.Start();
            }
            return pool.DataSource;
        }
    }

    private NpgsqlDataSource Build(string databaseName)
    {
        var builder = new NpgsqlDataSourceBuilder(Endpoint.ConnectionString(databaseName))
        {
            Name = _poolNamePrefix + databaseName,
        };
        builder.ConnectionStringBuilder.MaxPoolSize = PerDatabaseMaxConnections;
        builder.ConnectionStringBuilder.MinPoolSize = 0;
        // Npgsql prunes by the median of idle counts sampled every 10 s, which takes connections from a busy database
        // between its requests; room for other databases is made by the budget, so only a long quiet spell prunes.
        builder.ConnectionStringBuilder.ConnectionIdleLifetime = 900;
        // The same few statements run on every call (the security stamp, access rights, the ORM's queries): prepared on
        // their second use, they skip parsing and planning. PgBouncer in transaction mode needs max_prepared_statements
        // (1.21 or later) for this.
        builder.ConnectionStringBuilder.MaxAutoPrepare = 64;
        builder.ConnectionStringBuilder.AutoPrepareMinUsages = 2;
        builder.ConnectionStringBuilder.Timeout = Math.Max(1, (int)Math.Ceiling(WaitTimeout.TotalSeconds));
        builder.UseLoggerFactory(new PhysicalOpenHook(() => MakeRoom(databaseName)));
        builder.UsePhysicalConnectionInitializer(
            _ => WaitForRoomAsync(databaseName).GetAwaiter().GetResult(),
            _ => WaitForRoomAsync(databaseName));
        return builder.Build();
    }

    /// <summary>
    /// A connection outside every pool, for LISTEN: it stays open for the life of the listener. While open it counts
    /// against the budget like a pooled one.
    /// </summary>
    public NpgsqlConnection CreateDedicatedConnection(string databaseName, string applicationName)
    {
        var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString(databaseName, applicationName))
        {
            Pooling = false,
            KeepAlive = 15,
            Timeout = 5,
        };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        connection.StateChange += (_, change) =>
        {
            var opened = change.CurrentState == System.Data.ConnectionState.Open;
            var closed = change.OriginalState == System.Data.ConnectionState.Open && !opened;
            if (opened || closed)
            {
                lock (_lock)
                {
                    _dedicatedOpen += opened ? 1 : -1;
                    if (opened)
                    {
                        TryMakeRoomLocked(databaseName, closeBusyPools: false);
                    }
                }
            }
        };
        return connection;
    }

    /// <summary>Closes the pool of a database about to be dropped, renamed or restored.</summary>
    public async Task EvictAsync(string databaseName)
    {
        Pool? pool;
        lock (_lock)
        {
            _byName.Remove(databaseName, out pool);
        }
        if (pool is not null)
        {
            await pool.DataSource.DisposeAsync();
        }
    }

    /// <summary>Every idle connection of every pool is closed; connections in use close when they are returned.</summary>
    public void ClearAll()
    {
        lock (_lock)
        {
            foreach (var pool in _byName.Values)
            {
                pool.DataSource.Clear();
            }
        }
    }

    private void OnServerLost()
    {
        Interlocked.Increment(ref _restartsSeen);
        ClearAll();
    }

    private void SweepDormantPools()
    {
        List<Pool> dormant = [];
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            CountLocked();
            var before = Environment.TickCount64 - (long)_dormantAfter.TotalMilliseconds;
            foreach (var pool in _byName.Values)
            {
                if (!pool.Pinned && pool.Total == 0 && pool.LastUsed < before)
                {
                    dormant.Add(pool);
                }
            }
            foreach (var pool in dormant)
            {
                _byName.Remove(pool.Database);
            }
        }
        foreach (var pool in dormant)
        {
            _ = pool.DataSource.DisposeAsync().AsTask();
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<Pool> pools;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            pools = [.. _byName.Values];
            _byName.Clear();
        }
        await _dormantSweep.DisposeAsync();
        if (_restartWatch is not null)
        {
            await _restartWatch.DisposeAsync();
        }
        foreach (var pool in pools)
        {
            await pool.DataSource.DisposeAsync();
        }
        _counts.Dispose();
    }
}
