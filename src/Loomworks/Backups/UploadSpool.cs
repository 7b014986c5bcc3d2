namespace Loomworks.Backups;

/// <summary>
/// Where restore uploads wait on data_dir's disk (data_dir/tmp) before they are restored: at most
/// <see cref="DatabaseManagerOptions.MaxConcurrentUploads"/> at once and <see cref="DatabaseManagerOptions.MaxSpoolBytes"/>
/// together, each at most <see cref="DatabaseManagerOptions.MaxRestoreBytes"/>. Callers check the master password before
/// they ask for a place, so that no byte of an unauthorised upload is ever written.
/// </summary>
public sealed class UploadSpool(DatabaseManagerOptions options)
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(30);
    private int _uploads;
    private long _heldBytes;

    /// <summary>Takes a place for one upload, or refuses at once when every place is taken.</summary>
    public SpooledUpload Begin(string kind)
    {
        if (Interlocked.Increment(ref _uploads) > options.MaxConcurrentUploads)
        {
            Interlocked.Decrement(ref _uploads);
            throw new DatabaseManagerException(DatabaseManagerError.Busy,
                $"{options.MaxConcurrentUploads} restore upload(s) are already in progress (loomworks_restore_max_uploads); " +
                "nothing was stored, try again when one has finished")
            { RetryAfter = RetryAfter };
        }
        try
        {
            Directory.CreateDirectory(options.TempDir);
            return new SpooledUpload(this, Path.Combine(options.TempDir, $"{kind}-{Guid.NewGuid():N}"));
        }
        catch
        {
            Interlocked.Decrement(ref _uploads);
            throw;
        }
    }

    /// <summary>Counts <paramref name="bytes"/> more against the spool's total; false (and nothing counted) when they do not fit.</summary>
    private bool TryHold(long bytes)
    {
        if (Interlocked.Add(ref _heldBytes, bytes) <= options.MaxSpoolBytes)
        {
            return true;
        }
        Interlocked.Add(ref _heldBytes, -bytes);
        return false;
    }

    /// <summary>One upload's file: written once from a stream, removed (and its place and bytes given back) on dispose.</summary>
    public sealed class SpooledUpload : IDisposable
    {
        private readonly UploadSpool _spool;
        private long _held;
        private bool _disposed;

        internal SpooledUpload(UploadSpool spool, string path)
        {
            _spool = spool;
            Path = path;
        }

        public string Path { get; }

        /// <summary>Copies <paramref name="source"/> into the file; a source past either limit is refused and its bytes removed.</summary>
        public async Task WriteFromAsync(Stream source, CancellationToken cancellationToken)
        {
            var options = _spool.Options;
            await using var file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
            {
                if (_held + read > options.MaxRestoreBytes)
                {
                    throw BackupArchive.TooLarge(options.MaxRestoreBytes);
                }
                if (!_spool.TryHold(read))
                {
                    throw new DatabaseManagerException(DatabaseManagerError.Busy,
                        $"the restore uploads in progress would hold more than {options.MaxSpoolBytes / (1024 * 1024)} MB in " +
                        $"{options.TempDir} (loomworks_restore_spool_max_mb); nothing was kept, try again when they have finished")
                    { RetryAfter = RetryAfter };
                }
                _held += read;
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            File.Delete(Path);
            Interlocked.Add(ref _spool._heldBytes, -_held);
            Interlocked.Decrement(ref _spool._uploads);
        }
    }

    private DatabaseManagerOptions Options => options;
}
