using System.Buffers;
using System.Text.Json;

namespace Loomworks.Rpc;

/// <summary>
/// JSON written into a buffer rented from the shared array pool, so that an answer costs neither garbage nor a copy
/// into an array of its exact size. Buffers larger than <see cref="MaxPooledBytes"/> are plain arrays that are never
/// pooled, so one large answer does not keep its memory in the pool. Dispose gives the buffer back.
/// </summary>
public sealed class PooledJson : IBufferWriter<byte>, IDisposable
{
    public const int MaxPooledBytes = 1024 * 1024;
    private const int InitialBytes = 16 * 1024;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(InitialBytes);
    private int _written;

    /// <summary>The JSON written so far; valid until the next write or <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _written);

    /// <summary>The JSON <paramref name="write"/> produces, in a pooled buffer the caller disposes.</summary>
    public static PooledJson Serialize(Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var json = new PooledJson();
        try
        {
            using (var writer = new Utf8JsonWriter(json))
            {
                write(writer);
            }
            return json;
        }
        catch
        {
            json.Dispose();
            throw;
        }
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _written);
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public void Dispose()
    {
        Release(_buffer);
        _buffer = [];
        _written = 0;
    }

    private void Reserve(int sizeHint)
    {
        var needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }
        var size = (int)Math.Min(Array.MaxLength, Math.Max(2L * _buffer.Length, (long)_written + needed));
        var larger = size <= MaxPooledBytes ? ArrayPool<byte>.Shared.Rent(size) : GC.AllocateUninitializedArray<byte>(size);
        _buffer.AsSpan(0, _written).CopyTo(larger);
        Release(_buffer);
        _buffer = larger;
    }

    private static void Release(byte[] buffer)
    {
        if (buffer.Length is > 0 and <= MaxPooledBytes)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
