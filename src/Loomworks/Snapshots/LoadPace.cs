using System.Diagnostics;
using Loomworks.Postgres;

namespace Loomworks.Snapshots;

/// <summary>
/// The pace of a restore's load into the live server. Its WAL is every tenant's WAL: a neighbour's commit waits until
/// all WAL written before it is on disk, so a load at full speed delays every neighbour's commit. The load therefore
/// runs at full speed while the other tenants are idle, and at <paramref name="pacedBytesPerSecond"/> (all its workers
/// together; 0: never paced) from the moment one of them works until <see cref="QuietAfter"/> without any.
/// </summary>
public sealed class LoadPace(long pacedBytesPerSecond)
{
    /// <summary>How long after the other tenants' last statement the load keeps its pace.</summary>
    public static readonly TimeSpan QuietAfter = TimeSpan.FromSeconds(2);

    /// <summary>A quarter of the pipe psql reads from, so that it always finds rows waiting.</summary>
    private const int Chunk = CommandRunner.InputPipeBytes / 4;

    /// <summary>Backlog in the reader's pipe under which the next chunk is written: the chunk then fits.</summary>
    private const int RefillBelow = CommandRunner.InputPipeBytes - Chunk;

    /// <summary>Sleeps are not finer than a millisecond or two: shorter waits add up until one is worth sleeping.</summary>
    private static readonly TimeSpan ShortestWait = TimeSpan.FromMilliseconds(5);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _lock = new();
    private TimeSpan? _lastWork;
    // When the bytes sent so far may have gone at the paced rate; a worker ahead of it waits.
    private TimeSpan _due;
    private TimeSpan _pacedFor;

    /// <summary>Whether the load is held to its paced rate now.</summary>
    public bool Paced
    {
        get
        {
            lock (_lock)
            {
                return IsPaced(_clock.Elapsed);
            }
        }
    }

    /// <summary>How long the load has waited so far to keep its pace.</summary>
    public TimeSpan PacedFor
    {
        get
        {
            lock (_lock)
            {
                return _pacedFor;
            }
        }
    }

    /// <summary>Takes how long ago another tenant last worked (zero: it works now; null: none has a session).</summary>
    public void Observe(TimeSpan? sinceLastWork)
    {
        lock (_lock)
        {
            if (sinceLastWork is { } since && (_lastWork is not { } last || _clock.Elapsed - since > last))
            {
                _lastWork = _clock.Elapsed - since;
            }
        }
    }

    /// <summary>
    /// Copies the first <paramref name="length"/> bytes of <paramref name="source"/> into <paramref name="destination"/>, at
    /// the pace <see cref="Paced"/> says, blocking its thread (one long copy, where an await per chunk only adds hops
    /// between threads).
    /// </summary>
    public void Copy(Stream source, long length, Stream destination, CancellationToken cancellationToken)
    {
        var buffer = new byte[Chunk];
        int read;
        while (length > 0 && (read = source.Read(buffer, 0, (int)Math.Min(buffer.Length, length))) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            length -= read;
            // Written only where it fits: a writer blocked on a full pipe is woken by every 4 KB psql reads, and that
            // ping-pong, not the copying, made the load through the pipe half again slower than psql reading the file.
            while (CommandRunner.QueuedBytes(destination) > RefillBelow)
            {
                cancellationToken.WaitHandle.WaitOne(1);
            }
            destination.Write(buffer, 0, read);
            if (Reserve(read) is { } wait)
            {
                cancellationToken.WaitHandle.WaitOne(wait);
            }
        }
    }

    /// <summary>Accounts for <paramref name="bytes"/> sent; how long to sleep before sending more, if worth it.</summary>
    private TimeSpan? Reserve(int bytes)
    {
        lock (_lock)
        {
            var now = _clock.Elapsed;
            if (!IsPaced(now))
            {
                _due = now;
                return null;
            }
            _due = (_due > now ? _due : now) + TimeSpan.FromSeconds(bytes / (double)pacedBytesPerSecond);
            var wait = _due - now;
            if (wait <= ShortestWait)
            {
                return null;
            }
            _pacedFor += wait;
            return wait;
        }
    }

    private bool IsPaced(TimeSpan now) => pacedBytesPerSecond > 0 && _lastWork is { } at && now - at < QuietAfter;
}
