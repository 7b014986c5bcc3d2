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
        return total + (_restartWatch is null ? 0 : 1);
    }

    /// <summary>
    /// Runs before a pool opens a physical connection (already counted as in use): makes room if it can, unless others
    /// are already waiting, whose turn comes first.
    /// </summary>
    private void MakeRoom(string database)
    {
        lock (_lock)
        {
            if (_waiters.Count == 0)
            {
                TryMakeRoomLocked(database);
            }
        }
    }

    /// <summary>
    /// Runs once a physical connection is open. When the budget is exceeded because every connection is in use, the
    /// new one waits its turn (first come, first served) until something comes free, or fails after the timeout.
    /// </summary>
    private async Task WaitForRoomAsync(string database)
    {
        LinkedListNode<string> turn;
        lock (_lock)
        {
            if (_waiters.Count == 0 && TryMakeRoomLocked(database))
            {
                return;
            }
            turn = _waiters.AddLast(database);
        }
        var started = Stopwatch.GetTimestamp();
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5));
                lock (_lock)
                {
                    if (_waiters.First == turn && TryMakeRoomLocked(database, waiting: 1))
                    {
                        return;
                    }
                }
                if (Stopwatch.GetElapsedTime(started) > WaitTimeout)
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
                _waiters.Remove(turn);
            }
        }
    }

    /// <summary>
    /// Closes idle connections of other databases, least recently used first and databases with nothing in use before
    /// the others, until the count is within the budget. True when it is. Connections waiting their turn are open but
    /// not counted: they are admitted one by one.
    /// </summary>
    /// <param name="database">The database that needs the room: its own idle connections are not closed for it.</param>
    /// <param name="waiting">Of the queued connections (open but not yet admitted), how many are admitted by this room.</param>
    private bool TryMakeRoomLocked(string database, int waiting = 0)
    {
        HashSet<string>? cleared = null;
        while (CountLocked() - _waiters.Count + waiting > MaxConnections)
        {
            Pool? victim = null;
            foreach (var pool in _byName.Values)
            {
                if (pool.Idle == 0 || pool.Database == database || cleared?.Contains(pool.Database) == true)
                {
                    continue;
                }
                if (victim is null || (pool.Used == 0, -pool.LastUsed).CompareTo((victim.Used == 0, -victim.LastUsed)) > 0)
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
