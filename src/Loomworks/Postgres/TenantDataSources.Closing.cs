using System.Diagnostics;
using Npgsql;

namespace Loomworks.Postgres;

// Closing connections without ever exceeding the budget: a permit whose connection closes returns only once
// pg_stat_activity no longer lists its backend, asked on a reserved connection kept for this. Npgsql never prunes on
// its own; a sweep closes the connections of pools idle longer than IdleLifetime the same way, and forgets pools
// unused for longer than ForgetAfter.
public sealed partial class TenantDataSources
{
    private static readonly TimeSpan IdleLifetime = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ForgetAfter = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan SweepEvery = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan GoneTimeout = TimeSpan.FromSeconds(5);

    private readonly List<PendingClose> _confirming = [];
    private bool _confirmingRuns;
    // Used by the one confirmation loop only.
    private NpgsqlConnection? _keeper;
    private ITimer? _sweep;

    private async Task CloseIdleAsync(string database, CancellationToken cancellationToken)
    {
        Task closing;
        lock (_lock)
        {
            if (!_pools.TryGetValue(database, out var pool))
            {
                return;
            }
            closing = ReleaseIdle(pool, forGood: true);
        }
        await closing.WaitAsync(cancellationToken);
    }

    /// <summary>Every session ended: the idle connections' permits return at once, as there is nothing to wait for.</summary>
    private void ForgetAllIdle()
    {
        lock (_lock)
        {
            foreach (var pool in _pools.Values)
            {
                _held -= pool.Permits - pool.Busy;
                pool.Permits = pool.Busy;
                pool.Epoch++;
                pool.Idle.Clear();
                // Under the lock, as in ReleaseIdle: no connection granted after this is among those closed.
                pool.Source.Clear();
            }
            ServeWaiters();
        }
    }

    private sealed record PendingClose(Pool Pool, HashSet<int> Backends, int Freed, long Since)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Under the lock: <paramref name="freed"/> permits return once the backends are gone from PostgreSQL.</summary>
    private Task Confirm(Pool pool, HashSet<int> backends, int freed)
    {
        _closing += freed;
        pool.Closing.Add(backends);
        var pending = new PendingClose(pool, backends, freed, Stopwatch.GetTimestamp());
        _confirming.Add(pending);
        if (!_confirmingRuns)
        {
            _confirmingRuns = true;
            _ = Task.Run(ConfirmAsync);
        }
        return pending.Done.Task;
    }

    /// <summary>One loop asks for every backend being closed at once, and returns permits as their backends go.</summary>
    private async Task ConfirmAsync()
    {
        while (true)
        {
            int[] pids = [];
            var stop = false;
            lock (_lock)
            {
                foreach (var pending in _confirming.ToList())
                {
                    if (pending.Backends.Count == 0 || Stopwatch.GetElapsedTime(pending.Since) > GoneTimeout || _disposed)
                    {
                        // Past the timeout the place is given anyway: PostgreSQL's max_connections leaves room above db_maxconn.
                        _confirming.Remove(pending);
                        pending.Pool.Closing.Remove(pending.Backends);
                        _held -= pending.Freed;
                        _closing -= pending.Freed;
                        pending.Done.TrySetResult();
                    }
                }
                ServeWaiters();
                if (_confirming.Count == 0)
                {
                    _confirmingRuns = false;
                    stop = true;
                }
                else
                {
                    pids = [.. _confirming.SelectMany(pending => pending.Backends).Distinct()];
                }
            }
            if (stop)
            {
                if (_disposed && _keeper is not null)
                {
                    await _keeper.DisposeAsync();
                }
                return;
            }
            var alive = await AliveAsync(pids);
            bool waitMore;
            lock (_lock)
            {
                foreach (var pending in _confirming)
                {
                    pending.Backends.RemoveWhere(pid => alive is not null && !alive.Contains(pid));
                }
                waitMore = _confirming.All(pending => pending.Backends.Count > 0);
            }
            if (waitMore)
            {
                await Task.Delay(1);
            }
        }
    }

    /// <summary>Which of the backends pg_stat_activity still lists; null when PostgreSQL gives no answer.</summary>
    private async Task<HashSet<int>?> AliveAsync(int[] pids)
    {
        try
        {
            _keeper ??= await OpenKeeperAsync();
            await using var command = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)", _keeper);
            command.Parameters.AddWithValue(pids);
            var alive = new HashSet<int>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                alive.Add(reader.GetInt32(0));
            }
            return alive;
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException
                                      or ObjectDisposedException)
        {
            var broken = _keeper;
            _keeper = null;
            if (broken is not null)
            {
                await broken.DisposeAsync();
            }
            return null;
        }
    }

    private async Task<NpgsqlConnection> OpenKeeperAsync()
    {
        var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString("postgres", "loomworks-budget"))
        {
            Pooling = false,
            Timeout = 5,
        };
        var keeper = new NpgsqlConnection(builder.ConnectionString);
        await keeper.OpenAsync();
        return keeper;
    }

    private void StartSweeping() => _sweep = TimeProvider.System.CreateTimer(_ => Sweep(), null, SweepEvery, SweepEvery);

    private void Sweep()
    {
        List<NpgsqlDataSource> forgotten = [];
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            foreach (var pool in _pools.Values.ToList())
            {
                var idleFor = Stopwatch.GetElapsedTime(pool.LastUsed);
                if (pool.Busy > 0 || idleFor < IdleLifetime)
                {
                    continue;
                }
                if (pool.Permits > 0)
                {
                    _ = ReleaseIdle(pool);
                }
                else if (idleFor > ForgetAfter && pool.Closing.Count == 0)
                {
                    _pools.Remove(pool.Name);
                    forgotten.Add(pool.Source);
                }
            }
        }
        foreach (var source in forgotten)
        {
            source.Dispose();
        }
    }

    private NpgsqlDataSource CreatePool(string database)
    {
        var builder = new NpgsqlConnectionStringBuilder(Endpoint.ConnectionString(database))
        {
            // The budget decides; Npgsql never has to wait, refuse or prune on its own.
            MaxPoolSize = PooledConnections,
            MinPoolSize = 0,
            ConnectionIdleLifetime = (int)TimeSpan.FromDays(1).TotalSeconds,
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
        if (_sweep is not null)
        {
            await _sweep.DisposeAsync();
        }
        foreach (var pool in pools)
        {
            await pool.Source.DisposeAsync();
        }
        if (_keeper is not null && !_confirmingRuns)
        {
            await _keeper.DisposeAsync();
        }
    }
}
