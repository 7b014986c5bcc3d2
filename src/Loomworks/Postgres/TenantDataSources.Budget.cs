using System.Data;
using System.Diagnostics;
using Npgsql;

namespace Loomworks.Postgres;

// How the budget is kept. Each database has an Npgsql pool, but no caller reaches it without a grant: a grant either
// reuses one of the pool's idle connections (the pool holds fewer busy connections than its permits) or carries a new
// permit. Npgsql opens a physical connection only when none of its pool is idle, so a pool never holds more
// connections than its permits, and the permits of all pools never exceed PooledConnections. When the permits are
// spent, the pool idle longest gives up its idle connections; their permits return only once PostgreSQL shows their
// backends gone (by pid), so PostgreSQL never sees more than the budget either.
public sealed partial class TenantDataSources
{
    /// <summary>How long a caller whose database has a connection in use waits for it before another database's idle ones close.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(2);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Pool> _pools = new(StringComparer.Ordinal);
    private readonly LinkedList<Waiter> _waiters = new();
    private int _held;
    private int _closing;
    private long _evictions;
    private long _opened;
    private bool _disposed;

    private sealed class Pool(string name, NpgsqlDataSource source)
    {
        public string Name { get; } = name;
        public NpgsqlDataSource Source { get; } = source;

        /// <summary>Connections granted and not yet given back.</summary>
        public int Busy { get; set; }

        /// <summary>Connections this pool may hold, busy and idle; never below <see cref="Busy"/>.</summary>
        public int Permits { get; set; }

        /// <summary>Bumped when the idle connections are closed; a connection granted before closes when given back.</summary>
        public int Epoch { get; set; }

        /// <summary>Backends given back idle and not taken again.</summary>
        public HashSet<int> Idle { get; } = [];

        /// <summary>Backends being closed and waited for; one taken by a grant in flight instead is struck off.</summary>
        public List<HashSet<int>> Closing { get; } = [];

        public long LastUsed { get; set; }
    }

    private sealed class Waiter(string database)
    {
        public string Database { get; } = database;
        public long Since { get; } = Stopwatch.GetTimestamp();
        public TaskCompletionSource<Grant> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly record struct Grant(Pool Pool, bool NewConnection);

    internal async Task<NpgsqlConnection> OpenAsync(string database, CancellationToken cancellationToken)
    {
        Grant grant;
        Waiter? waiter = null;
        LinkedListNode<Waiter>? node = null;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!TryGrantAtOnce(database, out grant))
            {
                waiter = new Waiter(database);
                node = _waiters.AddLast(waiter);
                ServeWaiters();
            }
        }
        if (waiter is not null)
        {
            grant = await WaitForGrantAsync(waiter, node!, cancellationToken);
        }
        try
        {
            var connection = await grant.Pool.Source.OpenConnectionAsync(cancellationToken);
            var pid = connection.ProcessID;
            int epoch;
            lock (_lock)
            {
                grant.Pool.Idle.Remove(pid);
                foreach (var closing in grant.Pool.Closing)
                {
                    closing.Remove(pid);
                }
                epoch = grant.Pool.Epoch;
            }
            var released = 0;
            connection.StateChange += (sender, change) =>
            {
                if (change.CurrentState != ConnectionState.Open && Interlocked.Exchange(ref released, 1) == 0)
                {
                    GiveBack(grant.Pool, pid, epoch, broken: ((NpgsqlConnection)sender).FullState == ConnectionState.Broken);
                }
            };
            return connection;
        }
        catch
        {
            lock (_lock)
            {
                ReturnUnused(grant);
            }
            throw;
        }
    }

    /// <summary>Under the lock: a grant whose connection was never handed out goes back, and the queue is served.</summary>
    private void ReturnUnused(Grant grant)
    {
        grant.Pool.Busy--;
        if (grant.NewConnection)
        {
            grant.Pool.Permits--;
            _held--;
        }
        ServeWaiters();
    }

    private async Task<Grant> WaitForGrantAsync(Waiter waiter, LinkedListNode<Waiter> node, CancellationToken cancellationToken)
    {
        try
        {
            return await waiter.Completion.Task.WaitAsync(WaitTimeout, cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            lock (_lock)
            {
                if (node.List is not null)
                {
                    _waiters.Remove(node);
                }
                else if (waiter.Completion.Task.IsCompletedSuccessfully)
                {
                    // Granted just as the wait ended: the grant goes back unused.
                    ReturnUnused(waiter.Completion.Task.Result);
                }
            }
            if (e is TimeoutException)
            {
                throw new NpgsqlException(
                    $"no connection to database \"{waiter.Database}\" within {WaitTimeout.TotalSeconds:0} s: all {PooledConnections} " +
                    "connections of db_maxconn are busy", e);
            }
            throw;
        }
    }

    /// <summary>
    /// Under the lock: a grant without waiting, from the database's idle connections or a free permit; a free permit
    /// only when nobody is queued, as whoever queued first is served first.
    /// </summary>
    private bool TryGrantAtOnce(string database, out Grant grant)
    {
        var pool = PoolOf(database);
        if (pool.Busy < pool.Permits)
        {
            grant = GrantIdle(pool);
            return true;
        }
        if (_waiters.Count == 0 && _held < PooledConnections)
        {
            grant = GrantNew(pool);
            return true;
        }
        grant = default;
        return false;
    }

    private static Grant GrantIdle(Pool pool)
    {
        pool.Busy++;
        pool.LastUsed = Stopwatch.GetTimestamp();
        return new Grant(pool, NewConnection: false);
    }

    private Grant GrantNew(Pool pool)
    {
        pool.Permits++;
        pool.Busy++;
        pool.LastUsed = Stopwatch.GetTimestamp();
        _held++;
        _opened++;
        return new Grant(pool, NewConnection: true);
    }

    private Pool PoolOf(string database)
    {
        if (!_pools.TryGetValue(database, out var pool))
        {
            pool = new Pool(database, CreatePool(database));
            _pools[database] = pool;
        }
        return pool;
    }

    /// <summary>Under the lock: the pool idle longest (other than <paramref name="except"/>) gives up its idle connections.</summary>
    private bool EvictIdle(Pool except, TimeSpan unusedFor)
    {
        Pool? victim = null;
        foreach (var pool in _pools.Values)
        {
            if (pool != except && pool.Permits > pool.Busy && (victim is null || pool.LastUsed < victim.LastUsed)
                && Stopwatch.GetElapsedTime(pool.LastUsed) >= unusedFor)
            {
                victim = pool;
            }
        }
        if (victim is null)
        {
            return false;
        }
        _evictions++;
        _ = ReleaseIdle(victim);
        return true;
    }

    /// <summary>
    /// Under the lock: starts closing the pool's idle connections. Their permits stay counted until PostgreSQL has let
    /// the backends go, then serve the queue. A pool given up for good (its database about to be dropped or renamed)
    /// is removed; otherwise it is kept, with what Npgsql learned of the database's types.
    /// </summary>
    private Task ReleaseIdle(Pool pool, bool forGood = false)
    {
        var freed = pool.Permits - pool.Busy;
        pool.Permits = pool.Busy;
        pool.Epoch++;
        HashSet<int> backends = [.. pool.Idle];
        pool.Idle.Clear();
        // Closed here, under the lock, so no connection opened after this decision is among those closed.
        if (forGood && pool.Busy == 0)
        {
            _pools.Remove(pool.Name);
            pool.Source.Dispose();
        }
        else
        {
            pool.Source.Clear();
        }
        return Confirm(pool, backends, freed);
    }

    private void GiveBack(Pool pool, int pid, int epoch, bool broken)
    {
        lock (_lock)
        {
            pool.Busy--;
            pool.LastUsed = Stopwatch.GetTimestamp();
            if (broken || epoch != pool.Epoch)
            {
                // Npgsql closed it (broken, or its pool was cleared since): its permit returns once the backend is gone.
                pool.Permits--;
                _ = Confirm(pool, [pid], freed: 1);
            }
            else
            {
                pool.Idle.Add(pid);
            }
            ServeWaiters();
        }
    }

    /// <summary>
    /// Under the lock: serves the queue in order. A caller whose database has an idle connection takes it (that takes
    /// nothing from anyone) unless a database with none is waiting and this one has others; free permits go to the
    /// first in line. When none is free, the idle connections of the database idle longest start closing for those in
    /// line whose database has no connection; the others wait for their own database's connections to come back, which
    /// keeps connections with the databases that use them, unless they have waited longer than <see cref="Patience"/>
    /// and some database has been unused for as long.
    /// </summary>
    private void ServeWaiters()
    {
        // Databases with several connections give an idle one up, rather than reuse it, while databases with none wait.
        // One connection per such database is enough to start with; the queue counts databases, not callers.
        HashSet<Pool> without = [];
        foreach (var waiter in _waiters)
        {
            if (PoolOf(waiter.Database) is { Permits: 0 } pool)
            {
                without.Add(pool);
            }
        }
        var shortOf = without.Count - _closing;
        for (var node = _waiters.First; node is not null;)
        {
            var next = node.Next;
            var pool = PoolOf(node.Value.Database);
            if (pool.Busy < pool.Permits && pool.Permits > 1 && shortOf > 0)
            {
                shortOf--;
            }
            else if (pool.Busy < pool.Permits || _held < PooledConnections)
            {
                _waiters.Remove(node);
                node.Value.Completion.TrySetResult(pool.Busy < pool.Permits ? GrantIdle(pool) : GrantNew(pool));
            }
            node = next;
        }
        // Every idle connection left now belongs to a database nobody is waiting for, or is given up for one with none.
        var needRoom = 0;
        var somethingIdle = true;
        HashSet<Pool> counted = [];
        for (var node = _waiters.First; node is not null && somethingIdle; node = node.Next)
        {
            var pool = PoolOf(node.Value.Database);
            if (!counted.Add(pool))
            {
                continue;
            }
            if (pool.Permits == 0)
            {
                needRoom++;
                if (_closing < needRoom)
                {
                    // When nothing is idle anywhere, only a connection given back can serve anyone.
                    somethingIdle = EvictIdle(except: pool, TimeSpan.Zero);
                }
            }
            else if (pool.Busy == pool.Permits && Stopwatch.GetElapsedTime(node.Value.Since) >= Patience)
            {
                // Growing a busy database takes only from databases nobody has used for as long: closing a connection
                // its database is about to ask for again would trade a wait for a new session, which costs more.
                needRoom++;
                if (_closing < needRoom)
                {
                    EvictIdle(except: pool, Patience);
                }
            }
        }
    }
}
