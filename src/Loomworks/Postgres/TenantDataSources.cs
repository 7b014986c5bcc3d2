using System.Collections.Concurrent;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One budget of <see cref="MaxConnections"/> (db_maxconn) PostgreSQL connections for every database this instance
/// uses, as Odoo's pool keeps it: idle connections are reused by the database they belong to, and when a database
/// needs a connection and the budget is spent, the database whose connections have been idle longest gives its idle
/// ones up (closed, and gone from PostgreSQL, before the new one opens). Every feature that works in a database gets
/// its connections here, never from a connection string of its own.
/// </summary>
public sealed partial class TenantDataSources : IAsyncDisposable
{
    /// <summary>
    /// Connections of the budget outside the pools: the LISTEN connection of the tenant change listener, and the one
    /// that confirms closed connections are gone before their place is given to another database.
    /// </summary>
    public const int ReservedConnections = 2;

    /// <summary>The smallest budget: the reserved connections and two pooled ones.</summary>
    public const int MinimumConnections = ReservedConnections + 2;

    private readonly ConcurrentDictionary<string, PooledDatabase> _handles = new(StringComparer.Ordinal);

    public TenantDataSources(PostgresEndpoint endpoint, int maxConnections = 64, TimeSpan? waitTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, MinimumConnections);
        Endpoint = endpoint;
        MaxConnections = maxConnections;
        PooledConnections = maxConnections - ReservedConnections;
        WaitTimeout = waitTimeout ?? TimeSpan.FromSeconds(15);
        StartSweeping();
    }

    public PostgresEndpoint Endpoint { get; }

    /// <summary>db_maxconn: the most connections to PostgreSQL this instance holds at any moment.</summary>
    public int MaxConnections { get; }

    /// <summary>The part of the budget the databases' pools share.</summary>
    public int PooledConnections { get; }

    /// <summary>How long a caller waits for a connection when every one of the budget is busy.</summary>
    public TimeSpan WaitTimeout { get; }

    /// <summary>How many times a database's idle connections were closed to make room for another database.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>How many new connections the pools have opened.</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>How many databases hold connections (busy or idle) right now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _pools.Count;
            }
        }
    }

    /// <summary>Connections the pools hold or are opening now, busy and idle; never above <see cref="PooledConnections"/>.</summary>
    public int Held
    {
        get
        {
            lock (_lock)
            {
                return _held;
            }
        }
    }

    public PooledDatabase For(string databaseName) => _handles.GetOrAdd(databaseName, name => new PooledDatabase(this, name));

    /// <summary>The LISTEN connection: outside the pools (one of the reserved connections), open for the listener's life.</summary>
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

    /// <summary>
    /// Closes the idle connections of a database about to be dropped, renamed or restored and waits until PostgreSQL no
    /// longer has them; connections a caller still holds close when given back.
    /// </summary>
    public Task EvictAsync(string databaseName) => CloseIdleAsync(databaseName, CancellationToken.None);

    /// <summary>
    /// PostgreSQL ended every session (a restart, a failover): every idle connection is dead, so all are dropped at once
    /// instead of failing the next request of each database.
    /// </summary>
    public void ServerLost() => ForgetAllIdle();
}
