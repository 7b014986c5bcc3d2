using System.Diagnostics;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// The connection budget. Npgsql pools per data source and has no cap across pools, so the registry counts the
/// physical connections of its pools itself (Npgsql's own connection-count metric, read in process) and acts at two
/// points of a physical open: just before the socket is opened, it closes the idle connections of the least recently
/// used other database while the count is over the budget; if nothing was idle, the open goes on and the connection
/// initializer waits, until something comes free or <see cref="WaitTimeout"/> passes, then fails with a clear error.
/// </summary>
public sealed partial class TenantDataSources
{
    /// <summary>Refreshes every pool's idle and in-use counts; the caller holds the lock.</summary>
    private int CountLocked()
    {
        foreach (var pool in _byName.Values)
        {
            pool.Idle = 0;
            pool.Used = 0;
        }
        _counts.Record((database, idle, value) =>
        {
            if (_byName.TryGetValue(database, out var pool))
            {
                if (idle)
                {
                    pool.Idle = value;
                }
                else
                {
                    pool.Used = value;
                }
            }
        });
        var total = 0;
        foreach (var pool in _byName.Values)
        {
            total += pool.Total;
        }
        return total + _dedicatedOpen;
    }

    /// <summary>Runs before a pool opens a physical connection (already counted as in use): makes room if it can.</summary>
    private void MakeRoom(string database)
    {
        lock (_lock)
        {
            TryMakeRoomLocked(database, closeBusyPools: false);
        }
    }

    /// <summary>
    /// Runs once a physical connection is open. When the budget is still exceeded, every other connection being in use or
    /// belonging to a database that has some in use, the new one waits, not counted, until there is room for it, and
    /// fails after the timeout. Waiting a moment spares busy databases: their idle connections are closed only when no
    /// room came otherwise.
    /// </summary>
    private async Task WaitForRoomAsync(string database)
    {
        lock (_lock)
        {
            if (TryMakeRoomLocked(database, closeBusyPools: false))
            {
                return;
            }
            _waiting++;
        }
        var started = Stopwatch.GetTimestamp();
        var pause = 1;
        try
        {
            while (true)
            {
                await Task.Delay(pause);
                pause = Math.Min(pause * 2, 10);
                var waited = Stopwatch.GetElapsedTime(started);
                lock (_lock)
                {
                    if (TryMakeRoomLocked(database, closeBusyPools: waited > BusyPoolGrace, admitsWaiter: true))
                    {
                        return;
                    }
                }
                if (waited > WaitTimeout)
                {
                    throw new NpgsqlException(
                        $"All {MaxConnections} PostgreSQL connections allowed by db_maxconn are in use and none came free within " +
                        $"{WaitTimeout.TotalSeconds:0} s; database {database} could not get one. Raise db_maxconn (and PostgreSQL's " +
                        "max_connections) or lower the number of concurrent requests.");
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                _waiting--;
            }
        }
    }

    private static readonly TimeSpan BusyPoolGrace = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Closes idle connections of other databases, those with nothing in use first (least recently used first), until the
    /// count is within the budget. True when it is. Waiting connections are open but not counted.
    /// </summary>
    /// <param name="database">The database that needs the room: its own idle connections are not closed for it.</param>
    /// <param name="closeBusyPools">Whether a database with connections in use may lose its idle ones.</param>
    /// <param name="admitsWaiter">The room is for a waiting connection, which becomes counted once it fits.</param>
    private bool TryMakeRoomLocked(string database, bool closeBusyPools, bool admitsWaiter = false)
    {
        HashSet<string>? cleared = null;
        while (CountLocked() - _waiting + (admitsWaiter ? 1 : 0) > MaxConnections)
        {
            Pool? victim = null;
            foreach (var pool in _byName.Values)
            {
                if (pool.Idle == 0 || pool.Database == database || cleared?.Contains(pool.Database) == true
                    || (pool.Used > 0 && !closeBusyPools))
                {
                    continue;
                }
                // Databases with nothing in use first, least recently used first; among busy ones, the one with the
                // most idle connections, which it needs least.
                if (victim is null || (pool.Used == 0, pool.Used == 0 ? -pool.LastUsed : pool.Idle)
                        .CompareTo((victim.Used == 0, victim.Used == 0 ? -victim.LastUsed : victim.Idle)) > 0)
                {
                    victim = pool;
                }
            }
            if (victim is null)
            {
                return false;
            }
            (cleared ??= []).Add(victim.Database);
            Interlocked.Increment(ref _evictions);
            // Clear closes the pool's idle connections now; any it has in use are closed when they are returned.
            victim.DataSource.Clear();
        }
        return true;
    }
}
