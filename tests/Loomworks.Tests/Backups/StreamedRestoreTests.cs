using System.IO.Compression;
using System.Text;
using Loomworks.Backups;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

/// <summary>
/// The zip's dump.sql is streamed into psql while its files are unpacked beside it: damage found mid-stream, in
/// either, must still end in a clear refusal with nothing created, and a parallel pg_restore must load a dump whole.
/// </summary>
public sealed class StreamedRestoreTests(PostgresFixture pg)
{
    [Fact]
    public async Task Zip_whose_dump_sql_is_cut_at_a_statement_boundary_is_refused_and_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "sr-cut");
        var source = await h.SeedAsync("src", partners: 2000);
        var manager = h.Manager();
        var target = h.Name("target");
        var good = await h.DumpAsync(manager, source, "good.zip");
        // A well-formed zip whose dump.sql stops right after the first table's rows: every statement in it is valid,
        // so psql alone would load it without an error and commit a database missing most of its rows.
        var cut = h.Scratch.File("cut.zip");
        await RewriteAsync(good, cut, (name, bytes) =>
        {
            if (name != "dump.sql")
            {
                return bytes;
            }
            var text = Encoding.UTF8.GetString(bytes);
            return Encoding.UTF8.GetBytes(text[..(text.IndexOf("\n\\.\n", StringComparison.Ordinal) + 4)]);
        });

        var e = await h.AssertRestoreRefusedAsync(manager, target, cut);
        Assert.Equal(DatabaseManagerError.InvalidBackup, e.Error);
        Assert.Contains("dump.sql in the zip is truncated", e.Message, StringComparison.Ordinal);

        // The untouched backup still restores under that name: nothing was left behind to block it.
        await manager.RestoreFileAsync(target, good);
        Assert.Equal(2000, await h.CountAsync(target, "SELECT count(*) FROM res_partner"));
    }

    [Fact]
    public async Task Zip_whose_dump_entry_is_damaged_mid_stream_is_refused_and_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "sr-damaged");
        var source = await h.SeedAsync("src", partners: 20000);
        var manager = h.Manager();
        var target = h.Name("target");
        var path = await h.DumpAsync(manager, source, "backup.zip");
        Damage(path, "dump.sql");

        var e = await h.AssertRestoreRefusedAsync(manager, target, path);
        Assert.True(e.Error is DatabaseManagerError.InvalidBackup or DatabaseManagerError.Failed, e.Message);
    }

    [Fact]
    public async Task Zip_with_a_damaged_file_entry_stops_the_load_beside_it_and_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "sr-file");
        var source = await h.SeedAsync("src", partners: 20000);
        var text = string.Concat(Enumerable.Range(0, 20000).Select(i => $"line {i} of an attachment\n"));
        await h.FileStore.StoreAsync(source, new MemoryStream(Encoding.UTF8.GetBytes(text)));
        var manager = h.Manager();
        var target = h.Name("target");
        var path = await h.DumpAsync(manager, source, "backup.zip");
        string entry;
        using (var zip = ZipFile.OpenRead(path))
        {
            entry = zip.Entries.Single(x => x.FullName.StartsWith("filestore/", StringComparison.Ordinal)
                && x.Length == text.Length).FullName;
        }
        Damage(path, entry);

        var e = await h.AssertRestoreRefusedAsync(manager, target, path);
        Assert.Equal(DatabaseManagerError.InvalidBackup, e.Error);
        Assert.Contains(entry, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_custom_dump_streamed_without_offsets_restores_whole_with_parallel_jobs()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "sr-jobs");
        var source = await h.SeedAsync("src", partners: 5000);
        await pg.ExecuteAsync(source, """
            CREATE TABLE sale_order_line (id serial PRIMARY KEY, partner_id int REFERENCES res_partner (id), name text);
            INSERT INTO sale_order_line (partner_id, name) SELECT 1 + g % 5000, 'line ' || g FROM generate_series(1, 20000) g;
            CREATE INDEX sale_order_line_partner ON sale_order_line (partner_id);
            """);
        var manager = h.Manager();
        var target = h.Name("target");
        // pg_dump writes into a pipe to us, so the dump has no data offsets: parallel workers must find tables by scanning.
        var path = await h.DumpAsync(manager, source, "backup.dump", BackupFormat.Dump);
        Assert.Contains("--jobs=4", DatabaseManager.PgRestoreArguments(target, path, 4));

        await manager.RestoreFileAsync(target, path);
        Assert.Equal(20000, await h.CountAsync(target, "SELECT count(*) FROM sale_order_line"));
        Assert.Equal(5000, await h.CountAsync(target, "SELECT count(*) FROM res_partner"));
        Assert.Equal(1, await h.CountAsync(target, "SELECT count(*) FROM pg_indexes WHERE indexname = 'sale_order_line_partner'"));
        Assert.Equal("active", await h.TenantStateAsync(target));
    }

    [Theory]
    [InlineData("SET x = 1;\n\n--\n-- PostgreSQL database dump complete\n--\n\n", true)]
    [InlineData("SET x = 1;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict AbC123\n\n", true)]
    [InlineData("SET x = 1;\r\n--\r\n-- PostgreSQL database dump complete\r\n--\r\n", true)]
    [InlineData("COPY public.res_partner (id) FROM stdin;\n1\n2\n\\.\n\n", false)]
    [InlineData("-- PostgreSQL database dump complete\nDROP TABLE res_partner;\n", false)]
    [InlineData("", false)]
    public void The_end_of_a_plain_dump_is_recognised_however_it_arrives_in_pieces(string ending, bool complete)
    {
        var bytes = Encoding.UTF8.GetBytes(new string('x', 5000) + "\n" + ending);
        foreach (var piece in new[] { 1, 7, 300, 100_000 })
        {
            var tail = new DumpTail();
            for (var i = 0; i < bytes.Length; i += piece)
            {
                tail.Add(bytes.AsSpan(i, Math.Min(piece, bytes.Length - i)));
            }
            Assert.Equal(complete, tail.IsComplete);
        }
    }

    private static async Task RewriteAsync(string from, string to, Func<string, byte[], byte[]> change)
    {
        using var input = ZipFile.OpenRead(from);
        using var output = ZipFile.Open(to, ZipArchiveMode.Create);
        foreach (var entry in input.Entries)
        {
            byte[] bytes;
            await using (var source = entry.Open())
            using (var buffer = new MemoryStream())
            {
                await source.CopyToAsync(buffer);
                bytes = buffer.ToArray();
            }
            await using var target = output.CreateEntry(entry.FullName).Open();
            await target.WriteAsync(change(entry.FullName, bytes));
        }
    }

    /// <summary>Flips bytes in the middle of an entry's compressed data; the zip's directory stays intact.</summary>
    private static void Damage(string path, string entryName)
    {
        long compressed;
        using (var zip = ZipFile.OpenRead(path))
        {
            compressed = zip.GetEntry(entryName)!.CompressedLength;
        }
        var bytes = File.ReadAllBytes(path);
        var name = Encoding.UTF8.GetBytes(entryName);
        for (var i = 0; i + 30 < bytes.Length; i++)
        {
            if (bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 3 && bytes[i + 3] == 4
                && bytes.AsSpan(i + 30, Math.Min(BitConverter.ToUInt16(bytes, i + 26), bytes.Length - i - 30)).SequenceEqual(name))
            {
                var data = i + 30 + BitConverter.ToUInt16(bytes, i + 26) + BitConverter.ToUInt16(bytes, i + 28);
                var middle = data + (int)(compressed / 2);
                for (var j = 0; j < 64 && middle + j < data + compressed; j++)
                {
                    bytes[middle + j] ^= 0x5A;
                }
                File.WriteAllBytes(path, bytes);
                return;
            }
        }
        throw new InvalidOperationException($"no local header for {entryName}");
    }
}
