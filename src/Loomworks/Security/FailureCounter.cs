using System.Collections.Concurrent;

namespace Loomworks.Security;

/// <summary>
/// Counts failed attempts per key (a client address, a database and address, …) and locks a key out once
/// <see cref="Limit"/> of them fall within <see cref="Window"/>: each failure that reaches the limit locks the key for
/// <see cref="LockOut"/>. With <see cref="ClearOnLockOut"/>, a lock-out starts the count over; without it the count
/// stays, so every later failure locks again at once. A success clears the key.
/// </summary>
public sealed class FailureCounter<TKey>(int limit, TimeSpan lockOut, TimeSpan window, bool clearOnLockOut,
    TimeProvider? time = null) where TKey : notnull
{
    // A client cycling through keys (addresses) must not grow the table without bound.
    private const int MaxEntries = 100_000;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<TKey, Entry> _entries = new();

    public int Limit { get; } = limit;
    public TimeSpan LockOut { get; } = lockOut;
    public TimeSpan Window { get; } = window;
    public bool ClearOnLockOut { get; } = clearOnLockOut;

    /// <summary>How long <paramref name="key"/> is still locked out, or null when it may try.</summary>
    public TimeSpan? LockedFor(TKey key)
    {
        if (!_entries.TryGetValue(key, out var entry))
        {
            return null;
        }
        TimeSpan left;
        lock (entry)
        {
            left = entry.LockedUntil - _time.GetUtcNow();
        }
        return left > TimeSpan.Zero ? left : null;
    }

    /// <summary>Counts one failure of <paramref name="key"/>; true when it reached the limit and locked the key.</summary>
    public bool Fail(TKey key)
    {
        var now = _time.GetUtcNow();
        if (_entries.Count >= MaxEntries)
        {
            foreach (var stale in _entries.Where(e => e.Value.IsIdle(now, LockOut)).Select(e => e.Key).ToList())
            {
                _entries.TryRemove(stale, out _);
            }
        }
        var entry = _entries.GetOrAdd(key, _ => new Entry());
        lock (entry)
        {
            if (now - entry.WindowStart > Window)
            {
                entry.WindowStart = now;
                entry.Count = 0;
            }
            entry.Last = now;
            if (++entry.Count < Limit)
            {
                return false;
            }
            entry.LockedUntil = now + LockOut;
            if (ClearOnLockOut)
            {
                entry.Count = 0;
            }
            return true;
        }
    }

    /// <summary>Forgets the failures of <paramref name="key"/>.</summary>
    public void Clear(TKey key) => _entries.TryRemove(key, out _);

    private sealed class Entry
    {
        public int Count;
        public DateTimeOffset WindowStart;
        public DateTimeOffset Last;
        public DateTimeOffset LockedUntil;

        public bool IsIdle(DateTimeOffset now, TimeSpan lockOut)
        {
            lock (this)
            {
                return now - Last >= lockOut && now >= LockedUntil;
            }
        }
    }
}
