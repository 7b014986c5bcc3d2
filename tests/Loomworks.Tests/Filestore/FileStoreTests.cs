using System.Text;
using Loomworks.Filestore;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Filestore;

public sealed class FileStoreTests : IDisposable
{
    private readonly Scratch _scratch = new("fs");
    private readonly FileStore _store;

    public FileStoreTests() => _store = new FileStore(_scratch.Path);

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public async Task Stores_by_sha1_once_and_reads_back()
    {
        var first = await _store.StoreAsync("fs-one", new MemoryStream(Encoding.UTF8.GetBytes("hello")));
        var second = await _store.StoreAsync("fs-one", new MemoryStream(Encoding.UTF8.GetBytes("hello")));
        Assert.Equal("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d", first.Checksum);
        Assert.Equal("aa/aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d", first.StoreFname);
        Assert.Equal(5, first.Size);
        Assert.Equal(first, second);
        await using var read = await _store.OpenAsync("fs-one", first.StoreFname);
        Assert.Equal("hello", await new StreamReader(read).ReadToEndAsync());
        Assert.Equal(5, _store.UsedBytes("fs-one"));
        // No temporary file is left behind.
        Assert.Single(Directory.EnumerateFiles(_store.DatabaseFolder("fs-one"), "*", SearchOption.AllDirectories));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("aa/AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D")]
    [InlineData("aa/aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d/..")]
    public void Refuses_store_names_that_are_not_ours(string storeFname) =>
        Assert.Throws<ArgumentException>(() => _store.Open("fs-two", storeFname));

    [Theory]
    [InlineData("../x")]
    [InlineData("Upper")]
    [InlineData("")]
    public void Refuses_database_names_that_could_escape(string database) =>
        Assert.Throws<ArgumentException>(() => _store.DatabaseFolder(database));

    [Fact]
    public async Task Collects_only_unreferenced_files_older_than_the_retention_window()
    {
        var keep = await _store.StoreAsync("fs-gc", new MemoryStream([1, 2, 3]));
        var oldOrphan = await _store.StoreAsync("fs-gc", new MemoryStream([4, 5, 6]));
        var youngOrphan = await _store.StoreAsync("fs-gc", new MemoryStream([7, 8, 9]));
        var folder = _store.DatabaseFolder("fs-gc");
        File.SetLastWriteTimeUtc(Path.Combine(folder, keep.StoreFname), DateTime.UtcNow.AddDays(-60));
        File.SetLastWriteTimeUtc(Path.Combine(folder, oldOrphan.StoreFname), DateTime.UtcNow.AddDays(-60));
        var freed = await _store.DeleteUnreferencedAsync("fs-gc", [keep.StoreFname], DateTimeOffset.UtcNow.AddDays(-30));
        Assert.Equal(3, freed);
        Assert.True(_store.Exists("fs-gc", keep.StoreFname));
        Assert.False(_store.Exists("fs-gc", oldOrphan.StoreFname));
        Assert.True(_store.Exists("fs-gc", youngOrphan.StoreFname));
    }

    [Fact]
    public async Task Storing_again_refreshes_the_time_so_collection_spares_it()
    {
        var stored = await _store.StoreAsync("fs-touch", new MemoryStream([1]));
        File.SetLastWriteTimeUtc(Path.Combine(_store.DatabaseFolder("fs-touch"), stored.StoreFname), DateTime.UtcNow.AddDays(-60));
        await _store.StoreAsync("fs-touch", new MemoryStream([1]));
        await _store.DeleteUnreferencedAsync("fs-touch", [], DateTimeOffset.UtcNow.AddDays(-30));
        Assert.True(_store.Exists("fs-touch", stored.StoreFname));
    }

    [Fact]
    public async Task Copies_share_files_by_hard_links_and_rename_and_drop_follow_the_database()
    {
        var stored = await _store.StoreAsync("fs-src", new MemoryStream(Encoding.UTF8.GetBytes("shared")));
        _store.CopyByHardLinks("fs-src", "fs-copy");
        var original = Path.Combine(_store.DatabaseFolder("fs-src"), stored.StoreFname);
        var copy = Path.Combine(_store.DatabaseFolder("fs-copy"), stored.StoreFname);
        Assert.Equal(Inode(original), Inode(copy));
        Assert.Throws<IOException>(() => _store.CopyByHardLinks("fs-src", "fs-copy"));

        _store.Rename("fs-copy", "fs-moved");
        Assert.True(_store.Exists("fs-moved", stored.StoreFname));
        Assert.False(Directory.Exists(_store.DatabaseFolder("fs-copy")));
        _store.Drop("fs-moved");
        Assert.False(Directory.Exists(_store.DatabaseFolder("fs-moved")));
        Assert.True(File.Exists(original));
    }

    private static string Inode(string path)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%i", path])
        {
            RedirectStandardOutput = true,
        })!;
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return output;
    }
}
