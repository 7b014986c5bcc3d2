namespace Loomworks.Backups;

/// <summary>The last bytes of a plain SQL dump seen so far: enough to tell whether pg_dump finished writing it.</summary>
internal sealed class DumpTail
{
    public const string CompletionLine = "-- PostgreSQL database dump complete";
    private const int Kept = 256;
    private readonly byte[] _tail = new byte[Kept];
    private int _length;

    public void Add(ReadOnlySpan<byte> data)
    {
        if (data.Length >= Kept)
        {
            data[^Kept..].CopyTo(_tail);
            _length = Kept;
            return;
        }
        var keep = Math.Min(_length, Kept - data.Length);
        _tail.AsSpan(_length - keep, keep).CopyTo(_tail);
        data.CopyTo(_tail.AsSpan(keep));
        _length = keep + data.Length;
    }

    /// <summary>
    /// True when pg_dump's completion comment is the last line that says anything: only blank lines, comment dashes
    /// and the \unrestrict of newer pg_dump versions may follow it.
    /// </summary>
    public bool IsComplete
    {
        get
        {
            var lines = System.Text.Encoding.UTF8.GetString(_tail, 0, _length).Split('\n');
            for (var i = lines.Length - 1; i >= 0; i--)
            {
                var line = lines[i].Trim();
                if (line == CompletionLine)
                {
                    return true;
                }
                if (line.Length > 0 && line != "--" && !line.StartsWith("\\unrestrict ", StringComparison.Ordinal))
                {
                    return false;
                }
            }
            return false;
        }
    }
}
