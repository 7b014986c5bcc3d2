using System.Text;

namespace Loomworks.Backups;

/// <summary>
/// A plain SQL dump as psql may run it. psql obeys backslash commands anywhere in its input (<c>\!</c> runs a shell
/// command, <c>\o</c> and <c>\copy</c> write files, <c>\connect</c> changes database), so the dump goes in behind a
/// <c>\restrict</c> with a key the file cannot know, and psql refuses every backslash command in it. pg_dump's own
/// <c>\restrict</c> line in the header and its <c>\unrestrict</c> after the last statement would fail against that
/// key and are left out; anywhere else they stay, and fail. A line is only dropped where pg_dump's COPY data can
/// never put one: the header precedes all data, and COPY writes a backslash in data as <c>\\</c>, never <c>\u</c>.
/// </summary>
internal sealed class RestrictedDumpStream : Stream
{
    private const int HeaderLimit = 64 * 1024;
    /// <summary>The end of the input kept back until the input is seen to end, so its \unrestrict can be left out.</summary>
    private const int Holdback = 512;
    private static readonly byte[] RestrictPrefix = "\\restrict "u8.ToArray();
    private static readonly byte[] UnrestrictPrefix = "\\unrestrict "u8.ToArray();
    private readonly Stream _inner;
    private readonly byte[] _buffer = new byte[PgProcess.ChunkBytes + HeaderLimit + Holdback];
    private readonly int _headerStart;
    private int _start;
    private int _end;
    private bool _began;
    private bool _innerEnded;
    private bool _tailFiltered;
    private bool _atLineStart = true;

    public RestrictedDumpStream(Stream inner, string key)
    {
        if (key.Length == 0 || !key.All(char.IsAsciiLetterOrDigit))
        {
            throw new ArgumentException("the key must be letters and digits", nameof(key));
        }
        _inner = inner;
        _end = _headerStart = Encoding.ASCII.GetBytes($"\\restrict {key}\n", _buffer);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }
        if (!_began)
        {
            LeaveOutHeaderRestrict();
            _began = true;
        }
        Fill(Math.Min(destination.Length + Holdback, _buffer.Length));
        if (_innerEnded && !_tailFiltered)
        {
            LeaveOutUnrestrictLines();
            _tailFiltered = true;
        }
        var available = _innerEnded ? _end - _start : _end - _start - Holdback;
        var count = Math.Clamp(available, 0, destination.Length);
        _buffer.AsSpan(_start, count).CopyTo(destination);
        _start += count;
        if (count > 0)
        {
            _atLineStart = _buffer[_start - 1] == (byte)'\n';
        }
        return count;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>Reads until <paramref name="wanted"/> bytes wait in the buffer or the input ends.</summary>
    private void Fill(int wanted)
    {
        if (_end - _start >= wanted || _innerEnded)
        {
            return;
        }
        if (_buffer.Length - _start < wanted)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            (_start, _end) = (0, _end - _start);
        }
        while (_end - _start < wanted)
        {
            var read = _inner.Read(_buffer.AsSpan(_end));
            if (read == 0)
            {
                _innerEnded = true;
                return;
            }
            _end += read;
        }
    }

    /// <summary>Drops the \restrict lines among the comments and blank lines before the dump's first statement.</summary>
    private void LeaveOutHeaderRestrict()
    {
        var position = _headerStart;
        while (true)
        {
            var newline = _buffer.AsSpan(position, _end - position).IndexOf((byte)'\n');
            if (newline < 0)
            {
                if (_innerEnded || _end - _headerStart >= HeaderLimit)
                {
                    return;
                }
                Fill(Math.Min(_end - _start + 8192, _headerStart + HeaderLimit));
                continue;
            }
            var line = _buffer.AsSpan(position, newline).TrimEnd((byte)'\r');
            if (line.StartsWith(RestrictPrefix))
            {
                Remove(position, newline + 1);
                continue;
            }
            if (!line.IsEmpty && !line.StartsWith("--"u8))
            {
                return;
            }
            position += newline + 1;
        }
    }

    /// <summary>Drops the lines starting with \unrestrict from the kept-back end of the input.</summary>
    private void LeaveOutUnrestrictLines()
    {
        var position = _start;
        if (!_atLineStart)
        {
            var newline = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (newline < 0)
            {
                return;
            }
            position += newline + 1;
        }
        while (position < _end)
        {
            var newline = _buffer.AsSpan(position, _end - position).IndexOf((byte)'\n');
            var length = newline < 0 ? _end - position : newline + 1;
            if (_buffer.AsSpan(position, length).StartsWith(UnrestrictPrefix))
            {
                Remove(position, length);
                continue;
            }
            position += length;
        }
    }

    private void Remove(int position, int length)
    {
        _buffer.AsSpan(position + length, _end - position - length).CopyTo(_buffer.AsSpan(position));
        _end -= length;
    }
}
