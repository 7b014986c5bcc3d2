using System.IO.Compression;

namespace Loomworks.Backups;

/// <summary>The kinds of file a restore accepts.</summary>
public enum BackupFormat
{
    /// <summary>Odoo's layout: dump.sql + filestore/ + manifest.json.</summary>
    Zip,

    /// <summary>A PostgreSQL custom-format dump (pg_dump -Fc), without files.</summary>
    Dump,
}

/// <summary>Checks an uploaded backup before anything is created: its kind, its entry names and its sizes.</summary>
public static class BackupArchive
{
    private static readonly byte[] ZipMagic = "PK\u0003\u0004"u8.ToArray();
    private static readonly byte[] EmptyZipMagic = "PK\u0005\u0006"u8.ToArray();
    private static readonly byte[] CustomDumpMagic = "PGDMP"u8.ToArray();

    /// <summary>Tells a zip from a custom-format dump by their first bytes; anything else is refused.</summary>
    public static BackupFormat Detect(string path)
    {
        Span<byte> head = stackalloc byte[5];
        int read;
        using (var file = File.OpenRead(path))
        {
            read = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        if (read == 0)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "the backup file is empty (was the upload cut short?)");
        }
        if (read >= 4 && (head[..4].SequenceEqual(ZipMagic) || head[..4].SequenceEqual(EmptyZipMagic)))
        {
            return BackupFormat.Zip;
        }
        if (read == 5 && head.SequenceEqual(CustomDumpMagic))
        {
            return BackupFormat.Dump;
        }
        throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
            "not a Loomworks backup: neither a zip (dump.sql, filestore/, manifest.json) nor a PostgreSQL custom-format dump");
    }

    /// <summary>Opens a zip, refusing damaged or truncated archives with a clear reason.</summary>
    public static ZipArchive OpenZip(string path)
    {
        try
        {
            // Entries are inflated 8 KB of input at a time: a 64 KB buffer spares most of those reads a system call.
            return new ZipArchive(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16), ZipArchiveMode.Read,
                leaveOpen: false);
        }
        catch (InvalidDataException e)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the zip is damaged or truncated (was the upload cut short?): {e.Message}", e);
        }
    }

    /// <summary>
    /// Refuses entry names that could escape the restore folder (<c>..</c>, absolute paths, drive letters, backslashes)
    /// and declared sizes beyond the caps, before a single byte is written.
    /// </summary>
    public static void CheckEntries(ZipArchive zip, long maxTotalBytes, int maxRatio)
    {
        long total = 0;
        foreach (var entry in zip.Entries)
        {
            CheckName(entry.FullName);
            total += entry.Length;
            if (total > maxTotalBytes)
            {
                throw TooLarge(maxTotalBytes);
            }
            CheckRatio(entry.FullName, entry.Length, entry.CompressedLength, maxRatio);
        }
    }

    public static void CheckName(string name)
    {
        var segments = name.Split('/');
        if (name.Length == 0 || name[0] == '/' || name.Contains('\\', StringComparison.Ordinal)
            || name.Contains('\0', StringComparison.Ordinal)
            || (name.Length >= 2 && name[1] == ':') || segments.Any(s => s is ".." or "."))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the zip holds an unsafe entry name '{name}' (absolute path or '..'); nothing was restored");
        }
    }

    /// <summary>Compression ratios above the cap only come from crafted archives (a zip bomb); small entries are spared.</summary>
    public static void CheckRatio(string name, long length, long compressedLength, int maxRatio)
    {
        const long SmallEntry = 1 << 20;
        if (length > SmallEntry && length > (long)maxRatio * Math.Max(1, compressedLength))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the zip entry '{name}' expands {length / Math.Max(1, compressedLength)} times (more than {maxRatio}): "
                + "refused as a zip bomb");
        }
    }

    public static DatabaseManagerException TooLarge(long maxTotalBytes) => new(DatabaseManagerError.InvalidBackup,
        $"the backup expands to more than {maxTotalBytes / (1024 * 1024)} MB (loomworks_restore_max_size_mb): refused");
}

/// <summary>Reads an entry and fails once more bytes come out than the entry declared, its ratio allows, or the total cap.</summary>
internal sealed class CappedReadStream(Stream inner, string name, long declaredLength, long compressedLength, int maxRatio,
    Func<long, bool> chargeTotal) : Stream
{
    private long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }

    private int Count(int read)
    {
        _read += read;
        if (_read > declaredLength)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the zip entry '{name}' holds more than the {declaredLength} bytes it declares: refused");
        }
        BackupArchive.CheckRatio(name, _read, compressedLength, maxRatio);
        if (!chargeTotal(read))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "the backup expands beyond the size cap: refused");
        }
        return read;
    }
}
