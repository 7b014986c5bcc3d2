using System.Buffers;
using System.Diagnostics;
using System.IO.Pipes;
using System.Text;
using System.Threading.Channels;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>pg_dump, pg_restore and psql started against our PostgreSQL server, with their error output kept for messages.</summary>
public sealed partial class PgTools(PostgresEndpoint endpoint, string binDirectory)
{
    private const int SetPipeSizeCommand = 1031; // F_SETPIPE_SZ
    private const int GetPipeSizeCommand = 1032; // F_GETPIPE_SZ

    public string BinDirectory => binDirectory;

    /// <summary>
    /// Starts <paramref name="program"/>; the caller pipes its standard streams and then awaits <see cref="PgProcess.WaitAsync"/>.
    /// It logs in as the server's administrator, or as <paramref name="login"/> when given.
    /// </summary>
    public PgProcess Start(string program, IEnumerable<string> arguments, bool redirectInput = false, bool redirectOutput = false,
        PgLogin? login = null)
    {
        Process process;
        try
        {
            process = CommandRunner.Start(Path.Combine(binDirectory, program), arguments, ConnectionEnvironment(login), redirectInput,
                redirectOutput);
        }
        catch (InvalidOperationException e)
        {
            throw new DatabaseManagerException(DatabaseManagerError.Failed,
                $"cannot run {program} from {binDirectory}: {e.InnerException?.Message}; install {PostgresBinaries.DebianPackage}", e);
        }
        if (redirectInput)
        {
            Widen(process.StandardInput.BaseStream);
        }
        if (redirectOutput)
        {
            Widen(process.StandardOutput.BaseStream);
        }
        return new PgProcess(program, process);
    }

    /// <summary>Connection settings travel in the environment, never on a command line other users can read.</summary>
    private Dictionary<string, string> ConnectionEnvironment(PgLogin? login)
    {
        var environment = new Dictionary<string, string>
        {
            ["PGHOST"] = endpoint.Host,
            ["PGPORT"] = endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PGUSER"] = login?.User ?? endpoint.Username,
            ["PGAPPNAME"] = "loomworks-backups",
            ["PGSSLMODE"] = endpoint.SslMode switch
            {
                SslMode.Disable => "disable",
                SslMode.Allow => "allow",
                SslMode.Require => "require",
                SslMode.VerifyCA => "verify-ca",
                SslMode.VerifyFull => "verify-full",
                _ => "prefer",
            },
        };
        if ((login is null ? endpoint.Password : login.Password) is { } password)
        {
            environment["PGPASSWORD"] = password;
        }
        return environment;
    }

    /// <summary>
    /// Widens a pipe from 64 KB to 1 MB (Linux; elsewhere, or when refused, it stays as it was): the program on the
    /// other side then runs on for a megabyte while this process waits for a core, instead of stopping every 64 KB.
    /// </summary>
    private static void Widen(Stream pipe)
    {
        if (OperatingSystem.IsLinux() && pipe is PipeStream stream)
        {
            _ = Native.Fcntl((int)stream.SafePipeHandle.DangerousGetHandle(), SetPipeSizeCommand, PgProcess.ChunkBytes);
        }
    }

    /// <summary>The capacity of a pipe in bytes, or -1 where it cannot be read.</summary>
    internal static int PipeSize(Stream pipe) => OperatingSystem.IsLinux() && pipe is PipeStream stream
        ? Native.Fcntl((int)stream.SafePipeHandle.DangerousGetHandle(), GetPipeSizeCommand, 0)
        : -1;

    /// <summary>Runs a program to its end and returns its standard output; a failure throws with its error output.</summary>
    public async Task<string> RunAsync(string program, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var result = await CommandRunner.RunAsync(Path.Combine(binDirectory, program), arguments, null, Timeout.InfiniteTimeSpan,
            ConnectionEnvironment(null), cancellationToken);
        return result.Succeeded ? result.Output : throw new DatabaseManagerException(DatabaseManagerError.Failed,
            $"{program} failed (exit code {result.ExitCode}): {result.Error.Trim()}");
    }
}

/// <summary>A role and its password for a program that must not run as the server's administrator.</summary>
public sealed record PgLogin(string User, string Password);

/// <summary>A running PostgreSQL program; its error output is drained continuously (the last 8 KB kept) so it never blocks.</summary>
public sealed class PgProcess : IDisposable
{
    private const int KeptErrorChars = 8192;

    /// <summary>Bytes moved per hand-over between the pipe's own thread and the caller.</summary>
    internal const int ChunkBytes = 1 << 20;

    /// <summary>Chunks waiting between the two sides: a few MB of slack, so neither waits on the other's bursts.</summary>
    internal const int QueuedChunks = 4;
    private readonly StringBuilder _error = new();
    private readonly Task _errorPump;

    internal PgProcess(string program, Process process)
    {
        Program = program;
        Process = process;
        _errorPump = PumpErrorsAsync();
    }

    public string Program { get; }
    public Process Process { get; }

    public string Error
    {
        get
        {
            lock (_error)
            {
                return _error.ToString().Trim();
            }
        }
    }

    /// <summary>Waits for the exit; a non-zero exit throws with the program's own words.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw;
        }
        await _errorPump;
        if (Process.ExitCode != 0)
        {
            throw new DatabaseManagerException(DatabaseManagerError.Failed,
                $"{Program} failed (exit code {Process.ExitCode}): {Error}");
        }
    }

    /// <summary>
    /// Copies the program's standard output into <paramref name="destination"/>. The pipe is read with blocking reads
    /// on a thread of its own, in 1 MB chunks handed over through a short queue: pg_dump writes a few KB at a time, an
    /// asynchronous pipe read costs an event-loop round trip for each (several times the CPU of the copy itself), and
    /// with the queue the program keeps writing while the destination compresses or sends.
    /// </summary>
    public async Task CopyOutputToAsync(Stream destination, CancellationToken cancellationToken)
    {
        var queue = NewQueue();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pipe = Process.StandardOutput.BaseStream;
        var reader = Task.Factory.StartNew(() => ReadPipe(pipe, queue.Writer, stop.Token), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            await foreach (var chunk in queue.Reader.ReadAllAsync(cancellationToken))
            {
                try
                {
                    await destination.WriteAsync(chunk.Bytes, cancellationToken);
                }
                finally
                {
                    chunk.Return();
                }
            }
        }
        catch
        {
            // The reader may be blocked in a read (the program is still writing) or on the full queue: both end here.
            await stop.CancelAsync();
            Kill();
            throw;
        }
        finally
        {
            await reader;
            while (queue.Reader.TryRead(out var left))
            {
                left.Return();
            }
        }
    }

    /// <summary>
    /// Feeds <paramref name="source"/> into the program's standard input (left open: the caller closes it once it is
    /// sure the input is whole); <paramref name="observe"/> sees every chunk before it is sent. Blocking reads and
    /// writes on a thread of its own: a source that inflates a zip entry then costs no thread-pool round trip per 8 KB
    /// it takes from the file, and the 1 MB pipe is queue enough, as it fills far faster than psql empties it. A program
    /// that stops reading ends the feed with the IOException of the broken pipe; cancelling ends the program.
    /// </summary>
    public Task FeedInputAsync(Stream source, Action<ReadOnlySpan<byte>> observe, CancellationToken cancellationToken)
    {
        var pipe = Process.StandardInput.BaseStream;
        return Task.Factory.StartNew(() =>
        {
            // A write blocked on a full pipe only returns once the program reads or is gone.
            using var registration = cancellationToken.Register(Kill);
            var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
            try
            {
                int length;
                while ((length = source.ReadAtLeast(buffer, ChunkBytes, throwOnEndOfStream: false)) > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    observe(buffer.AsSpan(0, length));
                    pipe.Write(buffer, 0, length);
                }
                cancellationToken.ThrowIfCancellationRequested();
            }
            catch (IOException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static Channel<Chunk> NewQueue() => Channel.CreateBounded<Chunk>(new BoundedChannelOptions(QueuedChunks)
    {
        SingleReader = true,
        SingleWriter = true,
    });

    private static void ReadPipe(Stream pipe, ChannelWriter<Chunk> queue, CancellationToken cancellationToken)
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                byte[]? buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
                try
                {
                    var length = pipe.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
                    if (length == 0)
                    {
                        return;
                    }
                    // This thread exists to block: on the read above, and here while the queue is full.
                    queue.WriteAsync(new Chunk(buffer, length), cancellationToken).AsTask().GetAwaiter().GetResult();
                    buffer = null;
                }
                finally
                {
                    Return(buffer);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The consumer gave up; it reports why.
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            failure = e;
        }
        finally
        {
            queue.TryComplete(failure);
        }
    }

    private static void Return(byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A pooled buffer and how much of it holds data.</summary>
    private readonly record struct Chunk(byte[] Buffer, int Length)
    {
        public ReadOnlyMemory<byte> Bytes => Buffer.AsMemory(0, Length);

        public void Return() => ArrayPool<byte>.Shared.Return(Buffer);
    }

    public void Kill()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        Kill();
        Process.Dispose();
    }

    private async Task PumpErrorsAsync()
    {
        var buffer = new char[4096];
        int read;
        while ((read = await Process.StandardError.ReadAsync(buffer)) > 0)
        {
            lock (_error)
            {
                _error.Append(buffer, 0, read);
                if (_error.Length > KeptErrorChars)
                {
                    _error.Remove(0, _error.Length - KeptErrorChars);
                }
            }
        }
    }
}
