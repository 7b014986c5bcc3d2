using System.Data;
using System.Diagnostics;
using Npgsql;

namespace Loomworks.Postgres;

// How the budget is kept. Each database has an Npgsql pool, but no caller reaches it without a grant: a grant either
// reuses one of the pool's idle connections (the pool holds fewer busy connections than its permits) or carries a new
// permit. Npgsql opens a physical connection only when none of its pool is idle, so a pool never holds more
// connections than its permits, and the permits of all pools never exceed PooledConnections. When the permits are
// spent, the pool idle longest gives up its idle connections; the new connection opens only after PostgreSQL shows
// their backends gone (by pid), so PostgreSQL never sees more than the budget either.
public sealed partial class TenantDataSources
{
    /// <summary>Idle connections Npgsql closes on its own after this many seconds; their permits are reclaimed by eviction.</summary>
    private const int IdleLifetimeSeconds = 300;

    private static readonly TimeSpan GoneTimeout = TimeSpan.FromSeconds(5);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Pool> _pools = new(StringComparer.Ordinal);
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly SemaphoreSlim _keeperGate = new(1, 1);
    private NpgsqlConnection? _keeper;
    private Task _settling = Task.CompletedTask;
    private int _held;
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

        /// <summary>Backends given back and not taken again (idle, or closed by Npgsql), with when they were given back.</summary>
        public Dictionary<int, long> Given { get; } = [];

        public long LastUsed { get; set; }
    }

    private sealed class Waiter(string database)
    {
        public string Database { get; } = database;
        public TaskCompletionSource<Grant> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly record struct Grant(Pool Pool, bool NewConnection, Task Settled);

    internal async Task<NpgsqlConnection> OpenAsync(string database, CancellationToken cancellationToken)
    {
        Grant grant;
        Waiter? waiter = null;
        LinkedListNode<Waiter>? node = null;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!TryGrant(database, queueFirst: true, out grant))
            {
                waiter = new Waiter(database);
                node = _waiters.AddLast(waiter);
            }
        }
        if (waiter is not null)
        {
            grant = await WaitForGrantAsync(waiter, node!, cancellationToken);
        }
        try
        {
            if (grant.NewConnection)
            {
                await grant.Settled.WaitAsync(cancellationToken);
            }
            var connection = await grant.Pool.Source.OpenConnectionAsync(cancellationToken);
            var pid = connection.ProcessID;
            int epoch;
            lock (_lock)
            {
                grant.Pool.Given.Remove(pid);
                epoch = grant.Pool.Epoch;
            }
            var released = 0;
            connection.StateChange += (_, change) =>
            {
                if (change.CurrentState != ConnectionState.Open && Interlocked.Exchange(ref released, 1) == 0)
                {
                    GiveBack(grant.Pool, pid, epoch);
                }
            };
            return connection;
        }
        catch
        {
            lock (_lock)
            {
                grant.Pool.Busy--;
                if (grant.NewConnection)
                {
                    grant.Pool.Permits--;
                    _held--;
                }
                ServeWaiters();
            }
            throw;
        }
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
                    // Granted just as the wait ended: the grant goes back as if the connection had been used.
                    var late = waiter.Completion.Task.Result;
                    late.Pool.Busy--;
                    ServeWaiters();
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

    /// <summary>Under the lock: a grant from the database's idle connections, a free permit, or another pool's idle ones.</summary>
    private bool TryGrant(string database, bool queueFirst, out Grant grant)
    {
        if (!_pools.TryGetValue(database, out var pool))
        {
            pool = new Pool(database, CreatePool(database));
            _pools[database] = pool;
        }
        pool.LastUsed = Stopwatch.GetTimestamp();
        if (pool.Busy < pool.Permits)
        {
            pool.Busy++;
            grant = new Grant(pool, NewConnection: false, Task.CompletedTask);
            return true;
        }
        // Someone queued first is served first; reusing one's own idle connection (above) takes nothing from them.
        if (queueFirst && _waiters.Count > 0)
        {
            grant = default;
            return false;
        }
        if (_held >= PooledConnections && !EvictIdle(except: pool))
        {
            grant = default;
            return false;
        }
        pool.Permits++;
        pool.Busy++;
        _held++;
        _opened++;
        grant = new Grant(pool, NewConnection: true, _settling);
        return true;
    }

    /// <summary>Under the lock: the pool idle longest (other than <paramref name="except"/>) gives up its idle connections.</summary>
    private bool EvictIdle(Pool except)
    {
        Pool? victim = null;
        foreach (var pool in _pools.Values)
        {
            if (pool != except && pool.Permits > pool.Busy && (victim is null || pool.LastUsed < victim.LastUsed))
            {
                victim = pool;
            }
        }
        if (victim is null)
        {
            return false;
        }
        _evictions++;
        var closing = ReleaseIdle(victim, removeWhenUnused: true);
        _settling = _settling.IsCompleted ? closing : Task.WhenAll(_settling, closing);
        return true;
    }

    /// <summary>Under the lock: takes the pool's idle permits back and starts closing its idle connections.</summary>
    private Task ReleaseIdle(Pool pool, bool removeWhenUnused)
    {
        _held -= pool.Permits - pool.Busy;
        pool.Permits = pool.Busy;
        pool.Epoch++;
        var pids = pool.Given.Keys.ToArray();
        pool.Given.Clear();
        var dispose = removeWhenUnused && pool.Busy == 0;
        if (dispose)
        {
            _pools.Remove(pool.Name);
        }
        return Task.Run(() => CloseAndConfirmAsync(pool.Source, pids, dispose));
    }

    private void GiveBack(Pool pool, int pid, int epoch)
    {
        lock (_lock)
        {
            pool.Busy--;
            var now = Stopwatch.GetTimestamp();
            pool.LastUsed = now;
            // Kept even when Npgsql closes the connection (an older epoch, or broken): the next eviction of this pool
            // waits for every backend it may still have.
            pool.Given[pid] = now;
            if (epoch != pool.Epoch || pool.Given.Count > 4 * Math.Max(1, pool.Permits))
            {
                ForgetLongGone(pool, now);
            }
            ServeWaiters();
        }
    }

    /// <summary>Backends given back longer ago than Npgsql keeps an idle connection are closed already.</summary>
    private static void ForgetLongGone(Pool pool, long now)
    {
        var horizon = now - Stopwatch.Frequency * (IdleLifetimeSeconds + 30);
        foreach (var (pid, at) in pool.Given.ToArray())
        {
            if (at < horizon)
            {
                pool.Given.Remove(pid);
            }
        }
    }

    /// <summary>Under the lock: grants to the queue in order, until the first that must still wait.</summary>
    private void ServeWaiters()
    {
        while (_waiters.First is { } first)
        {
            if (!TryGrant(first.Value.Database, queueFirst: false, out var grant))
            {
                return;
            }
            _waiters.RemoveFirst();
            first.Value.Completion.TrySetResult(grant);
        }
    }

    private async Task CloseIdleAsync(string database, CancellationToken cancellationToken)
    {
        Task closing;
        lock (_lock)
        {
            if (!_pools.TryGetValue(database, out var pool))
            {
                return;
            }
            closing = ReleaseIdle(pool, removeWhenUnused: true);
            ServeWaiters();
        }
        await closing.WaitAsync(cancellationToken);
    }

    private void ForgetAllIdle()
    {
        List<NpgsqlDataSource> sources = [];
        lock (_lock)
        {
            foreach (var pool in _pools.Values)
            {
                _held -= pool.Permits - pool.Busy;
                pool.Permits = pool.Busy;
                pool.Epoch++;
                pool.Given.Clear();
                sources.Add(pool.Source);
            }
            ServeWaiters();
        }
        foreach (var source in sources)
        {
            source.Clear();
        }
    }

    private async Task CloseAndConfirmAsync(NpgsqlDataSource source, int[] pids, bool dispose)
    {
        try
        {
            if (dispose)
            {
                await source.DisposeAsync();
            }
            else
            {
                source.Clear();
            }
            if (pids.Length > 0)
            {
                await WaitUntilGoneAsync(pids);
            }
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException
                                      or ObjectDisposedException)
        {
            // Without an answer the place is given anyway: PostgreSQL's own max_connections leaves room above db_maxconn.
        }
    }

    /// <summary>Waits until pg_stat_activity no longer lists the backends, on the reserved connection that is kept for this.</summary>
    private async Task WaitUntilGoneAsync(int[] pids)
    {
        await _keeperGate.WaitAsync();
        try
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(GoneTimeout.TotalSeconds * Stopwatch.Frequency);
            try
            {
                if (_keeper is null)
                {
                    var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString("postgres", "loomworks-budget"))
                    {
                        Pooling = false,
                        Timeout = 5,
                    };
                    _keeper = new NpgsqlConnection(builder.ConnectionString);
                    await _keeper.OpenAsync();
                }
                await using var command = new NpgsqlCommand("SELECT count(*)::int FROM pg_stat_activity WHERE pid = ANY($1)", _keeper);
                command.Parameters.AddWithValue(pids);
                while ((int)(await command.ExecuteScalarAsync())! > 0 && Stopwatch.GetTimestamp() < deadline)
                {
                    await Task.Delay(1);
                }
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                var broken = _keeper;
                _keeper = null;
                if (broken is not null)
                {
                    await broken.DisposeAsync();
                }
            }
        }
        finally
        {
            _keeperGate.Release();
        }
    }

    private NpgsqlDataSource CreatePool(string database)
    {
        var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString(database))
        {
            // The budget decides; Npgsql never has to wait or refuse on its own.
            MaxPoolSize = PooledConnections,
            MinPoolSize = 0,
            ConnectionIdleLifetime = IdleLifetimeSeconds,
            // The same few statements run on every call (the security stamp, access rights, the ORM's queries):
            // prepared on their second use, they skip parsing and planning. PgBouncer in transaction mode needs
            // max_prepared_statements (1.21 or later) for this.
            MaxAutoPrepare = 64,
            AutoPrepareMinUsages = 2,
        };
        return NpgsqlDataSource.Create(builder.ConnectionString);
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
            pools = [.. _pools.Values];
            _pools.Clear();
            foreach (var waiter in _waiters)
            {
                waiter.Completion.TrySetException(new ObjectDisposedException(nameof(TenantDataSources)));
            }
            _waiters.Clear();
        }
        foreach (var pool in pools)
        {
            await pool.Source.DisposeAsync();
        }
        await _keeperGate.WaitAsync();
        if (_keeper is not null)
        {
            await _keeper.DisposeAsync();
        }
        _keeperGate.Release();
        _keeperGate.Dispose();
    }
}
