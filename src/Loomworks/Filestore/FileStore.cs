using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Loomworks.Filestore;

/// <summary>
/// What <see cref="FileStore.StoreAsync"/> kept: the content's sha1, its size and the path relative to the database's folder.
/// </summary>
public sealed record StoredFile(string Checksum, long Size, string StoreFname);

/// <summary>
/// Attachment bytes stored by content under <c>data_dir/filestore/&lt;db&gt;/&lt;sha1[:2]&gt;/&lt;sha1&gt;</c>, as Odoo lays them out.
/// Files are immutable once written (temp file + rename), so copies of a database share them by hard links.
/// </summary>
public sealed partial class FileStore(string dataDir)
{
    [GeneratedRegex("^[0-9a-f]{2}/[0-9a-f]{40}$")]
    private static partial Regex StoreFnamePattern();

    /// <summary>Database names we accept as folder names: the same strict rule as identifiers we create.</summary>
    [GeneratedRegex("^[a-z][a-z0-9_-]{0,62}$")]
    private static partial Regex DatabaseNamePattern();

    private static readonly TimeSpan RefreshAfter = TimeSpan.FromHours(1);

    public string Root { get; } = Path.Combine(dataDir, "filestore");

    /// <summary>The folder of one database; the name is checked so that it cannot step outside the filestore.</summary>
    public string DatabaseFolder(string database) =>
        DatabaseNamePattern().IsMatch(database)
            ? Path.Combine(Root, database)
            : throw new ArgumentException($"'{database}' is not an acceptable database name for the filestore", nameof(database));

    /// <summary>
    /// Stores the stream's bytes; a file with the same content is kept once (its time is refreshed so collection spares it).
    /// </summary>
    public async Task<StoredFile> StoreAsync(string database, Stream content, CancellationToken cancellationToken = default)
    {
        var folder = DatabaseFolder(database);
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, $".tmp-{Guid.NewGuid():N}");
        string checksum;
        long size;
        try
        {
            using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true))
            {
                var buffer = new byte[81920];
                int read;
                size = 0;
                while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    sha1.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    size += read;
                }
                await file.FlushAsync(cancellationToken);
                // The rename below must never publish a name whose bytes are not yet on disk.
                file.Flush(flushToDisk: true);
            }
            checksum = Convert.ToHexStringLower(sha1.GetHashAndReset());
            var storeFname = $"{checksum[..2]}/{checksum}";
            var target = Path.Combine(folder, storeFname);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (File.Exists(target))
            {
                File.SetLastWriteTimeUtc(target, DateTime.UtcNow);
            }
            else
            {
                File.Move(temp, target, overwrite: true);
            }
            return new StoredFile(checksum, size, storeFname);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>
    /// Opens a stored file for reading; a store_fname that is not of our shape is refused, an absent one is FileNotFoundException.
    /// </summary>
    public Stream Open(string database, string storeFname)
    {
        var path = PathOf(database, storeFname);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
    }

    public Task<Stream> OpenAsync(string database, string storeFname) => Task.FromResult(Open(database, storeFname));

    public bool Exists(string database, string storeFname) => File.Exists(PathOf(database, storeFname));

    /// <summary>Whether a name has the shape of our content files (xx/&lt;sha1&gt;): nothing else may reach the disk.</summary>
    public static bool IsStoreFname(string storeFname) => StoreFnamePattern().IsMatch(storeFname);

    /// <summary>
    /// Sets a content file's time to now (it just lost or gained a reference); absent files and foreign names are ignored.
    /// </summary>
    public void Touch(string database, string storeFname)
    {
        if (!IsStoreFname(storeFname))
        {
            return;
        }
        try
        {
            File.SetLastWriteTimeUtc(PathOf(database, storeFname), DateTime.UtcNow);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Nothing to mark: the row pointed at a file that is not (or no longer) here.
        }
    }

    /// <summary>
    /// Deletes content files no record references and that were last written before <paramref name="olderThan"/>
    /// (now minus loomworks_snapshot_retention_days): a snapshot restored within that window still finds its files.
    /// Referenced files older than an hour get their time refreshed, so a file's time is never much older than its last
    /// reference, whichever way the reference went (even a row removed by SQL, not by the ORM).
    /// Returns the number of bytes freed.
    /// </summary>
    public Task<long> DeleteUnreferencedAsync(string database, IEnumerable<string> referenced, DateTimeOffset olderThan,
        CancellationToken cancellationToken = default)
    {
        var folder = DatabaseFolder(database);
        var keep = new HashSet<string>(referenced, StringComparer.Ordinal);
        long freed = 0;
        if (!Directory.Exists(folder))
        {
            return Task.FromResult(freed);
        }
        foreach (var file in ContentFiles(folder))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var relative = Path.GetRelativePath(folder, file.FullName).Replace('\\', '/');
            if (keep.Contains(relative))
            {
                if (file.LastWriteTimeUtc < DateTime.UtcNow - RefreshAfter)
                {
                    file.LastWriteTimeUtc = DateTime.UtcNow;
                }
                continue;
            }
            if (file.LastWriteTimeUtc >= olderThan.UtcDateTime)
            {
                continue;
            }
            freed += file.Length;
            file.Delete();
        }
        return Task.FromResult(freed);
    }

    /// <summary>Bytes the database's files take, each content counted once: what its storage quota is charged.</summary>
    public long UsedBytes(string database)
    {
        var folder = DatabaseFolder(database);
        return Directory.Exists(folder)
            ? new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
            : 0;
    }

    /// <summary>
    /// Makes <paramref name="target"/>'s folder (<paramref name="target"/> must not exist yet) share every file of
    /// <paramref name="source"/> by hard links, copying where links are impossible (another file system).
    /// The target is assembled under a temporary name and renamed in, so it is either whole or absent.
    /// </summary>
    public void CopyByHardLinks(string source, string target)
    {
        var from = DatabaseFolder(source);
        var to = DatabaseFolder(target);
        if (Directory.Exists(to))
        {
            throw new IOException($"the filestore of '{target}' already exists");
        }
        if (!Directory.Exists(from))
        {
            return;
        }
        var staging = StagingFolder(target);
        LinkTree(from, staging);
        Directory.Move(staging, to);
    }

    /// <summary>A folder beside the databases' folders where a database's files are assembled before being renamed in.</summary>
    public string StagingFolder(string database)
    {
        DatabaseFolder(database);
        return Path.Combine(Root, $".staging-{database}");
    }

    /// <summary>
    /// Links (or copies) every file under <paramref name="from"/> into <paramref name="to"/>, replacing what a crashed attempt left.
    /// </summary>
    public static void LinkTree(string from, string to)
    {
        if (Directory.Exists(to))
        {
            Directory.Delete(to, recursive: true);
        }
        Directory.CreateDirectory(to);
        foreach (var directory in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, directory)));
        }
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(to, Path.GetRelativePath(from, file));
            if (Native.Link(file, destination) != 0)
            {
                File.Copy(file, destination);
            }
        }
    }

    /// <summary>Moves a database's folder with the database (rename); nothing to do when it has no files.</summary>
    public void Rename(string oldName, string newName)
    {
        var from = DatabaseFolder(oldName);
        var to = DatabaseFolder(newName);
        if (Directory.Exists(from) && !Directory.Exists(to))
        {
            Directory.Move(from, to);
        }
    }

    /// <summary>Removes a database's files: first renamed aside (one atomic step), then deleted.</summary>
    public void Drop(string database)
    {
        var folder = DatabaseFolder(database);
        var trash = Path.Combine(Root, $".trash-{database}");
        if (Directory.Exists(folder))
        {
            if (Directory.Exists(trash))
            {
                Directory.Delete(trash, recursive: true);
            }
            Directory.Move(folder, trash);
        }
        if (Directory.Exists(trash))
        {
            Directory.Delete(trash, recursive: true);
        }
    }

    private string PathOf(string database, string storeFname) =>
        StoreFnamePattern().IsMatch(storeFname)
            ? Path.Combine(DatabaseFolder(database), storeFname)
            : throw new ArgumentException($"'{storeFname}' is not a filestore name (xx/<sha1>)", nameof(storeFname));

    private static IEnumerable<FileInfo> ContentFiles(string folder) =>
        new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories)
            .Where(f => StoreFnamePattern().IsMatch(Path.GetRelativePath(folder, f.FullName).Replace('\\', '/')));
}
