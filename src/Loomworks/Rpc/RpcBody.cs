using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Loomworks.Rpc;

/// <summary>
/// The memory all RPC request bodies being read or handled may hold together. Bodies take it chunk by chunk as their
/// bytes arrive and give it back when their request is answered, so many large bodies at once cannot exhaust the
/// server: the one that would pass the bound is refused (503) instead of read. Full-size chunks are reused while
/// bodies are in flight, so a burst allocates no more than the bound, and are let go once the burst is over.
/// </summary>
public sealed class RpcBodyBudget(long capacityBytes)
{
    private readonly ConcurrentStack<byte[]> _free = new();
    private const long CollectAfterBytes = 64L * 1024 * 1024;
    private const int SmallChunk = 4096;

    private long _available = capacityBytes;
    private long _releasedSinceCollection;
    private int _collecting;

    public long CapacityBytes { get; } = capacityBytes;

    public long AvailableBytes => Volatile.Read(ref _available);

    public bool TryReserve(long bytes)
    {
        var current = Volatile.Read(ref _available);
        while (current >= bytes)
        {
            var seen = Interlocked.CompareExchange(ref _available, current - bytes, current);
            if (seen == current)
            {
                return true;
            }
            current = seen;
        }
        return false;
    }

    /// <summary>A chunk of at least <paramref name="size"/> bytes: a reused full-size one, or a small one from the shared pool.</summary>
    public byte[] RentChunk(int size) => size > SmallChunk
        ? _free.TryPop(out var chunk) ? chunk : new byte[RpcBody.ChunkSize]
        : ArrayPool<byte>.Shared.Rent(Math.Max(size, 16));

    public void ReturnChunk(byte[] chunk)
    {
        if (chunk.Length == RpcBody.ChunkSize)
        {
            _free.Push(chunk);
        }
        else
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>
    /// Gives memory back. Once large bodies have come and gone and little is in flight, a full collection is queued: the
    /// chunks are garbage by then, and without one the server would keep their memory resident while it idles.
    /// </summary>
    public void Release(long bytes)
    {
        var available = Interlocked.Add(ref _available, bytes);
        if (Interlocked.Add(ref _releasedSinceCollection, bytes) < CollectAfterBytes || CapacityBytes - available > CollectAfterBytes / 4
            || Interlocked.Exchange(ref _collecting, 1) == 1)
        {
            return;
        }
        Interlocked.Exchange(ref _releasedSinceCollection, 0);
        _free.Clear();
        ThreadPool.UnsafeQueueUserWorkItem(_ =>
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            Volatile.Write(ref _collecting, 0);
        }, null);
    }
}

/// <summary>Why a body was not read whole.</summary>
public enum RpcBodyRefusal
{
    None,
    /// <summary>Declared or sent beyond the per-request cap: 413.</summary>
    TooLarge,
    /// <summary>The bodies in flight already hold the memory bound: 503 with Retry-After.</summary>
    Busy,
    /// <summary>The client sent a broken body (bad chunked encoding, fewer bytes than declared) or went away.</summary>
    Incomplete,
}

/// <summary>
/// A request body held in pooled chunks of at most 64 KB (never one large array, which would stay in the pool or the
/// large object heap after the request), parsed from <see cref="Sequence"/>; disposing it returns the chunks and
/// the reserved memory.
/// </summary>
public sealed class RpcBody : IDisposable
{
    public const int ChunkSize = 64 * 1024;

    /// <summary>How far over the cap a declared body may be and still be drained after its 413 (see <see cref="ReadAsync"/>).</summary>
    public const long RefusedBodyDrainBytes = 1024 * 1024;

    private readonly List<byte[]> _chunks = [];
    private readonly RpcBodyBudget _budget;
    private long _reserved;
    private int _lastFilled;

    private RpcBody(RpcBodyBudget budget) => _budget = budget;

    public long Length { get; private set; }

    public ReadOnlySequence<byte> Sequence
    {
        get
        {
            if (_chunks.Count == 0)
            {
                return ReadOnlySequence<byte>.Empty;
            }
            Segment? first = null, last = null;
            for (var i = 0; i < _chunks.Count; i++)
            {
                var memory = _chunks[i].AsMemory(0, i == _chunks.Count - 1 ? _lastFilled : _chunks[i].Length);
                last = last is null ? first = new Segment(memory, 0) : last.Append(memory);
            }
            return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
        }
    }

    public Stream OpenRead() => new SequenceStream(Sequence);

    /// <summary>
    /// Reads the request's body, refusing it as soon as it is declared or found to be over <paramref name="maxBytes"/>
    /// or over what <paramref name="budget"/> has left. Only a cancelled request throws.
    /// </summary>
    public static async Task<(RpcBody? Body, RpcBodyRefusal Refusal)> ReadAsync(HttpContext http, long maxBytes, RpcBodyBudget budget)
    {
        var declared = http.Request.ContentLength;
        // Set first: a body refused unread is then one Kestrel closes the connection on rather than drains. A declared
        // body only a little over the cap is drained after the answer, so that a client still sending it reads the 413.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            var drained = declared > maxBytes && declared - maxBytes <= RefusedBodyDrainBytes;
            limit.MaxRequestBodySize = (drained ? declared!.Value : maxBytes) + 1;
        }
        if (declared > maxBytes)
        {
            return (null, RpcBodyRefusal.TooLarge);
        }
        if (declared > budget.AvailableBytes)
        {
            return (null, RpcBodyRefusal.Busy);
        }
        var body = new RpcBody(budget);
        try
        {
            var refusal = await body.FillAsync(http, declared, maxBytes);
            if (refusal == RpcBodyRefusal.None)
            {
                return (body, refusal);
            }
            body.Dispose();
            return (null, refusal);
        }
        catch
        {
            body.Dispose();
            throw;
        }
    }

    private async Task<RpcBodyRefusal> FillAsync(HttpContext http, long? declared, long maxBytes)
    {
        var stream = http.Request.Body;
        try
        {
            while (declared is null || Length < declared)
            {
                if (_chunks.Count == 0 || _lastFilled == _chunks[^1].Length)
                {
                    // A small declared body gets one chunk of its size, not 64 KB.
                    var size = declared is { } d && d - Length < ChunkSize ? (int)(d - Length) : ChunkSize;
                    if (!AddChunk(size))
                    {
                        return RpcBodyRefusal.Busy;
                    }
                }
                var chunk = _chunks[^1];
                var read = await stream.ReadAsync(chunk.AsMemory(_lastFilled), http.RequestAborted);
                if (read == 0)
                {
                    break;
                }
                _lastFilled += read;
                Length += read;
                if (Length > maxBytes)
                {
                    return RpcBodyRefusal.TooLarge;
                }
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return RpcBodyRefusal.TooLarge;
        }
        catch (Exception e) when (e is BadHttpRequestException or IOException && !http.RequestAborted.IsCancellationRequested)
        {
            return RpcBodyRefusal.Incomplete;
        }
        return RpcBodyRefusal.None;
    }

    private bool AddChunk(int size)
    {
        var chunk = _budget.RentChunk(size);
        if (!_budget.TryReserve(chunk.Length))
        {
            _budget.ReturnChunk(chunk);
            return false;
        }
        _reserved += chunk.Length;
        _chunks.Add(chunk);
        _lastFilled = 0;
        return true;
    }

    public void Dispose()
    {
        foreach (var chunk in _chunks)
        {
            _budget.ReturnChunk(chunk);
        }
        _chunks.Clear();
        _lastFilled = 0;
        _budget.Release(_reserved);
        _reserved = 0;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>A read-only stream over the chunks, for XmlReader.</summary>
    private sealed class SequenceStream(ReadOnlySequence<byte> sequence) : Stream
    {
        private readonly long _length = sequence.Length;
        private ReadOnlySequence<byte> _rest = sequence;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _length;

        public override long Position
        {
            get => _length - _rest.Length;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var take = (int)Math.Min(buffer.Length, _rest.Length);
            _rest.Slice(0, take).CopyTo(buffer);
            _rest = _rest.Slice(take);
            return take;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
