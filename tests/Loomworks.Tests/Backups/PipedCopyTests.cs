using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Backups;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

/// <summary>
/// pg_dump's output and psql's input move through a thread of their own: a destination that fails, a caller that
/// cancels or a psql that stops reading must each end the copy with its own reason, stop the program, and hang nothing.
/// </summary>
public sealed class PipedCopyTests(PostgresFixture pg)
{
    [Fact]
    public async Task A_backup_whose_destination_fails_midway_ends_with_that_error_and_stops_pg_dump()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "pc-fail");
        var source = await BigSourceAsync(h);
        var manager = h.Manager();

        var destination = new FailingStream(failAfter: 3 << 20, cancel: null);
        var e = await Assert.ThrowsAsync<IOException>(() => manager.DumpAsync(source, destination, BackupFormat.Zip,
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(FailingStream.Message, e.Message);
        await AssertNoDumpSessionAsync(source);

        // Nothing was left behind: the next backup of the same database is whole.
        var path = h.Scratch.File("after.zip");
        await manager.DumpToFileAsync(source, path, cancellationToken: TestContext.Current.CancellationToken);
        var target = h.Name("target");
        await manager.RestoreFileAsync(target, path, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(200_000, await h.CountAsync(target, "SELECT count(*) FROM res_partner"));
    }

    [Theory]
    [InlineData(BackupFormat.Zip)]
    [InlineData(BackupFormat.Dump)]
    public async Task A_backup_cancelled_midway_throws_cancelled_and_stops_pg_dump(BackupFormat format)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, $"pc-cancel-{format.ToString().ToLowerInvariant()}");
        var source = await BigSourceAsync(h);
        var manager = h.Manager();

        using var cancel = new CancellationTokenSource();
        var destination = new FailingStream(failAfter: 1 << 20, cancel: cancel);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => manager.DumpAsync(source, destination, format,
            cancellationToken: cancel.Token));
        await AssertNoDumpSessionAsync(source);
    }

    [Fact]
    public async Task A_dump_sql_that_fails_early_ends_with_psql_s_own_error_while_megabytes_are_still_unsent()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "pc-early");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var good = h.Scratch.File("good.zip");
        await manager.DumpToFileAsync(source, good, cancellationToken: TestContext.Current.CancellationToken);
        // psql stops at the first statement (ON_ERROR_STOP) and closes its input with 16 MB of the dump still to come:
        // the copy must end on the broken pipe and report psql's reason, not wait for a reader that is gone.
        var hostile = h.Scratch.File("early.zip");
        using (var input = ZipFile.OpenRead(good))
        using (var output = ZipFile.Open(hostile, ZipArchiveMode.Create))
        {
            await using (var manifest = input.GetEntry("manifest.json")!.Open())
            await using (var copy = output.CreateEntry("manifest.json").Open())
            {
                await manifest.CopyToAsync(copy, TestContext.Current.CancellationToken);
            }
            await using var dump = output.CreateEntry("dump.sql", CompressionLevel.Fastest).Open();
            await dump.WriteAsync("SELECT 1 / 0;\n"u8.ToArray(), TestContext.Current.CancellationToken);
            for (var i = 0; i < 16 * 1024; i++)
            {
                // Random hex, so the entry does not look like a zip bomb.
                await dump.WriteAsync(Encoding.ASCII.GetBytes($"-- {Convert.ToHexString(RandomNumberGenerator.GetBytes(508))}\n"),
                    TestContext.Current.CancellationToken);
            }
            await dump.WriteAsync("--\n-- PostgreSQL database dump complete\n--\n"u8.ToArray(), TestContext.Current.CancellationToken);
        }

        var target = h.Name("target");
        var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, hostile,
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(DatabaseManagerError.Failed, e.Error);
        Assert.Contains("division by zero", e.Message, StringComparison.Ordinal);
        await h.AssertAbsentAsync(target);
    }

    [Fact]
    public async Task A_restore_cancelled_as_dump_sql_starts_streaming_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "pc-rcancel");
        var source = await BigSourceAsync(h);
        var path = h.Scratch.File("backup.zip");
        await h.Manager().DumpToFileAsync(source, path, cancellationToken: TestContext.Current.CancellationToken);

        var target = h.Name("target");
        using var cancel = new CancellationTokenSource();
        // Cancelled once the database exists and psql is about to be fed: at the same step every time, not by a timer.
        var manager = h.Manager(step =>
        {
            if (step == "restore:database_created")
            {
                cancel.Cancel();
            }
        });
        var e = await Record.ExceptionAsync(() => manager.RestoreFileAsync(target, path, cancellationToken: cancel.Token));
        Assert.NotNull(e);
        Assert.True(e is OperationCanceledException or DatabaseManagerException, e.ToString());
        await h.AssertAbsentAsync(target);
    }

    [Fact]
    public void The_pipes_to_and_from_a_postgres_program_hold_a_megabyte()
    {
        var tools = new PgTools(pg.Endpoint, PostgresBinaries.Locate().Directory);
        using var psql = tools.Start("psql", ["-X", "-q", "-d", "postgres", "-f", "-"], redirectInput: true, redirectOutput: true);
        Assert.Equal(1 << 20, PgTools.PipeSize(psql.Process.StandardInput.BaseStream));
        Assert.Equal(1 << 20, PgTools.PipeSize(psql.Process.StandardOutput.BaseStream));
        using var plain = new MemoryStream();
        Assert.Equal(-1, PgTools.PipeSize(plain));
    }

    [Fact]
    public async Task Feeding_a_program_that_stops_reading_ends_on_cancel_and_ends_the_program()
    {
        // `sleep` never reads its input: once the pipe's megabyte is full the feeding write blocks, and only the cancel
        // (which ends the program) may release it.
        var tools = new PgTools(pg.Endpoint, "/bin");
        using var sleeper = tools.Start("sleep", ["60"], redirectInput: true);
        using var cancel = new CancellationTokenSource();
        long fed = 0;
        var feed = sleeper.FeedInputAsync(new ZerosStream(failAfter: long.MaxValue), chunk =>
        {
            if ((fed += chunk.Length) > 4L << 20)
            {
                cancel.Cancel();
            }
        }, cancel.Token);
        cancel.CancelAfter(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            feed.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.True(sleeper.Process.WaitForExit(TimeSpan.FromSeconds(10)), "the program was not ended");
        Assert.InRange(fed, 1L << 20, 5L << 20);
    }

    [Fact]
    public async Task Feeding_from_a_source_that_fails_ends_with_the_source_s_error()
    {
        var tools = new PgTools(pg.Endpoint, "/bin");
        using var cat = tools.Start("cat", [], redirectInput: true, redirectOutput: true);
        var drain = cat.Process.StandardOutput.BaseStream.CopyToAsync(Stream.Null, TestContext.Current.CancellationToken);
        var source = new ZerosStream(failAfter: 3 << 20);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            cat.FeedInputAsync(source, _ => { }, TestContext.Current.CancellationToken));
        Assert.Equal(ZerosStream.Message, e.Message);
        cat.Process.StandardInput.Close();
        await drain;
    }

    /// <summary>About 25 MB of plain dump: pg_dump is still writing when the first megabytes reach the destination.</summary>
    private async Task<string> BigSourceAsync(ManagerHarness h)
    {
        var source = await h.SeedAsync("src");
        await pg.ExecuteAsync(source, """
            TRUNCATE res_partner;
            ALTER TABLE res_partner ADD COLUMN payload text;
            INSERT INTO res_partner (name, payload) SELECT 'partner ' || g, repeat(md5(g::text), 3) FROM generate_series(1, 200000) g;
            """);
        return source;
    }

    /// <summary>pg_dump's session on the server ends once the program is gone (it was killed, not left writing).</summary>
    private async Task AssertNoDumpSessionAsync(string database)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        long sessions;
        do
        {
            sessions = await pg.ScalarAsync<long>("postgres",
                $"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' AND application_name = 'loomworks-backups'");
            if (sessions == 0)
            {
                return;
            }
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Equal(0, sessions);
    }

    /// <summary>A destination that takes <c>failAfter</c> bytes, then fails (a client gone) or cancels the caller.</summary>
    private sealed class FailingStream(long failAfter, CancellationTokenSource? cancel) : Stream
    {
        public const string Message = "the client went away";
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Take(count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Take(buffer.Length);
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        private void Take(int count)
        {
            _written += count;
            if (_written <= failAfter)
            {
                return;
            }
            if (cancel is null)
            {
                throw new IOException(Message);
            }
            cancel.Cancel();
        }
    }

    /// <summary>Zeros until <c>failAfter</c> bytes have been read, then the error of a damaged entry.</summary>
    private sealed class ZerosStream(long failAfter) : Stream
    {
        public const string Message = "simulated damage in the middle of the entry";
        private long _read;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_read >= failAfter)
            {
                throw new InvalidDataException(Message);
            }
            Array.Clear(buffer, offset, count);
            _read += count;
            return count;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
