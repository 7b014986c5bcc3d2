using System.Security.Cryptography;
using System.Text.Json;
using Loomworks.Backups;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Rpc;
using Microsoft.Extensions.DependencyInjection;

namespace Loomworks.Tests.Filestore;

/// <summary>ir.attachment through the real RPC endpoints: bytes in the filestore, never in the database; limits, isolation, collection,
/// backups.</summary>
public sealed class AttachmentRpcTests(AttachmentRpcTests.Fixture fixture) : IClassFixture<AttachmentRpcTests.Fixture>, IDisposable
{
    // Hyphenated: the database manager only dumps databases whose names follow the subdomain rule.
    public const string Other = "rpc-attach-other";

    /// <summary>A server whose attachments may be 1 MB (the smallest limit) and whose bodies may be 4 MB, so the attachment limit is what
    /// refuses.</summary>
    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public RpcServer Server { get; private set; } = null!;
        public PostgresFixture Postgres => postgres;

        public async ValueTask InitializeAsync() => Server = await RpcServer.StartAsync(postgres, "rpc_attach",
            new Dictionary<string, string> { ["loomworks_attachment_max_mb"] = "1" }, 4L * 1024 * 1024, Other);

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private static readonly string[] FileFields = ["datas", "mimetype", "file_size", "checksum", "store_fname", "type"];
    private static readonly string[] DatasOnly = ["datas"];

    private readonly RpcServer _server = fixture.Server;
    private readonly PostgresFixture _postgres = fixture.Postgres;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private Task<object?> CallAsync(string model, string method, List<object?> args, Dictionary<string, object?>? kwargs = null,
        string? db = null) =>
        _client.ObjectAsync(db ?? _server.Db, 2, "admin", model, method, args, kwargs);

    private async Task<long> CreateAsync(Dictionary<string, object?> vals, string? db = null) =>
        (long)(await CallAsync("ir.attachment", "create", [vals], db: db))!;

    private async Task<Dictionary<string, object?>> ReadAsync(long id, string? db = null, string[]? fields = null) =>
        (Dictionary<string, object?>)((List<object?>)(await CallAsync("ir.attachment", "read", [new List<object?> { id }],
            new Dictionary<string, object?> { ["fields"] = (fields ?? FileFields).Cast<object?>().ToList() }, db))!)[0]!;

    private string FolderOf(string db) => Path.Combine(_server.DataDir, "filestore", db);

    private string PathOf(string db, string storeFname) => Path.Combine(FolderOf(db), storeFname);

    private static byte[] RandomBytes(int size) => RandomNumberGenerator.GetBytes(size);

    private async Task<long> CountAsync(string sql, string? db = null) => await _postgres.ScalarAsync<long>(db ?? _server.Db, sql);

    private async Task AssertServerUpAsync()
    {
        var (isFault, version) = await _client.XmlAsync("/xmlrpc/2/common", "version");
        Assert.False(isFault);
        Assert.Equal("18.0", ((Dictionary<string, object?>)version!)["server_version"]);
    }

    [Fact]
    public async Task Datas_round_trips_through_the_filestore_and_never_enters_the_database()
    {
        var bytes = RandomBytes(70_000);
        var id = await CreateAsync(new() { ["name"] = "notes.txt", ["datas"] = Convert.ToBase64String(bytes) });

        var row = await ReadAsync(id);
        Assert.Equal(Convert.ToBase64String(bytes), row["datas"]);
        // Odoo names files by sha1; the digest is an address here, not a security measure.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        hash.AppendData(bytes);
        var sha1 = Convert.ToHexStringLower(hash.GetHashAndReset());
        Assert.Equal(sha1, row["checksum"]);
        Assert.Equal($"{sha1[..2]}/{sha1}", row["store_fname"]);
        Assert.Equal(70_000L, row["file_size"]);
        Assert.Equal("text/plain", row["mimetype"]);
        Assert.Equal("binary", row["type"]);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(PathOf(_server.Db, sha1[..2] + "/" + sha1),
            TestContext.Current.CancellationToken));

        // No column of the table holds bytes, and the row is small whatever the file's size.
        Assert.Equal(0,
            await CountAsync("SELECT count(*) FROM information_schema.columns WHERE table_name = 'ir_attachment' AND data_type = 'bytea'"));
        Assert.True(await CountAsync($"SELECT pg_column_size(a.*)::bigint FROM ir_attachment a WHERE id = {id}") < 1000);

        // JSON-RPC reads the same base64; bin_size answers the human size as Odoo does.
        var (_, body) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "ir.attachment", "read",
            new object[] { new[] { id }, DatasOnly });
        Assert.Equal(Convert.ToBase64String(bytes), body.GetProperty("result")[0].GetProperty("datas").GetString());
        var sized = (List<object?>)(await CallAsync("ir.attachment", "read", [new List<object?> { id }],
            new() { ["fields"] = new List<object?> { "datas" }, ["context"] = new Dictionary<string, object?> { ["bin_size"] = true } }))!;
        Assert.Equal("68.36 Kb", ((Dictionary<string, object?>)sized[0]!)["datas"]);

        // raw is accepted as text, as Odoo encodes it.
        var rawId = await CreateAsync(new() { ["name"] = "raw.bin", ["raw"] = "plain text" });
        Assert.Equal(Convert.ToBase64String("plain text"u8.ToArray()), (await ReadAsync(rawId))["datas"]);

        var fields = (Dictionary<string, object?>)(await CallAsync("ir.attachment", "fields_get", [new List<object?> { "datas" }],
            new() { ["attributes"] = new List<object?> { "type", "readonly", "store" } }))!;
        var datas = (Dictionary<string, object?>)fields["datas"]!;
        Assert.Equal(("binary", false, false), (datas["type"], datas["readonly"], datas["store"]));
    }

    [Fact]
    public async Task Same_bytes_are_stored_once_and_writes_and_unlinks_leave_files_to_the_collector()
    {
        var bytes = RandomBytes(5000);
        var first = await CreateAsync(new() { ["name"] = "a.bin", ["datas"] = Convert.ToBase64String(bytes) });
        var second = await CreateAsync(new() { ["name"] = "b.bin", ["datas"] = Convert.ToBase64String(bytes) });
        var fname = (string)(await ReadAsync(first))["store_fname"]!;
        Assert.Equal(fname, (await ReadAsync(second))["store_fname"]);
        Assert.Single(Directory.GetFiles(FolderOf(_server.Db), Path.GetFileName(fname), SearchOption.AllDirectories));

        var replacement = RandomBytes(3000);
        Assert.Equal(true, await CallAsync("ir.attachment", "write", [new List<object?> { second },
            new Dictionary<string, object?> { ["datas"] = Convert.ToBase64String(replacement) }]));
        var rewritten = await ReadAsync(second);
        Assert.Equal(Convert.ToBase64String(replacement), rewritten["datas"]);
        Assert.Equal(3000L, rewritten["file_size"]);
        Assert.NotEqual(fname, rewritten["store_fname"]);
        Assert.True(File.Exists(PathOf(_server.Db, fname)));

        Assert.Equal(true, await CallAsync("ir.attachment", "unlink", [new List<object?> { first, second }]));
        Assert.Equal(0, await CountAsync($"SELECT count(*) FROM ir_attachment WHERE id IN ({first}, {second})"));
        Assert.True(File.Exists(PathOf(_server.Db, fname)));
        Assert.True(File.Exists(PathOf(_server.Db, (string)rewritten["store_fname"]!)));

        // Emptying datas drops the reference, as Odoo does.
        var third = await CreateAsync(new() { ["name"] = "c.bin", ["datas"] = Convert.ToBase64String(bytes) });
        await CallAsync("ir.attachment", "write", [new List<object?> { third }, new Dictionary<string, object?> { ["datas"] = false }]);
        var emptied = await ReadAsync(third);
        Assert.Equal((false, false, 0L), (emptied["datas"], emptied["store_fname"], emptied["file_size"]));
    }

    [Theory]
    [InlineData("logo", "png", "image/png")]
    [InlineData("report.pdf", "none", "application/pdf")]
    [InlineData("scan", "pdf", "application/pdf")]
    [InlineData("photo.jpg", "none", "image/jpeg")]
    [InlineData("sheet.xlsx", "none", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    [InlineData("blob", "none", "application/octet-stream")]
    [InlineData("page.html", "none", "text/html")]
    public async Task Mimetype_is_guessed_from_the_name_then_the_content(string name, string content, string expected)
    {
        byte[] bytes = content switch
        {
            "png" => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3],
            "pdf" => "%PDF-1.7\n..."u8.ToArray(),
            _ => RandomBytes(64).Select(b => (byte)(b | 0x80)).ToArray(),
        };
        var id = await CreateAsync(new() { ["name"] = name, ["datas"] = Convert.ToBase64String(bytes) });
        Assert.Equal(expected, (await ReadAsync(id))["mimetype"]);
    }

    [Fact]
    public async Task A_given_mimetype_is_kept_and_url_attachments_need_no_file()
    {
        var id = await CreateAsync(new() { ["name"] = "data", ["mimetype"] = "application/json",
            ["datas"] = Convert.ToBase64String("{}"u8.ToArray()) });
        Assert.Equal("application/json", (await ReadAsync(id))["mimetype"]);

        var url = await CreateAsync(new() { ["name"] = "Site", ["type"] = "url", ["url"] = "https://example.com/logo.png?x=1" });
        var row = await ReadAsync(url, fields: ["datas", "mimetype", "type", "url", "store_fname"]);
        Assert.Equal(("url", "image/png", false, false), (row["type"], row["mimetype"], row["datas"], row["store_fname"]));
    }

    [Fact]
    public async Task Attachments_over_the_limit_are_refused_naming_it_and_nothing_is_stored()
    {
        var before = Directory.Exists(FolderOf(_server.Db)) ? Directory.GetFiles(FolderOf(_server.Db), "*",
            SearchOption.AllDirectories).Length : 0;
        var fault = await Assert.ThrowsAsync<FaultException>(() =>
            CreateAsync(new() { ["name"] = "big.bin", ["datas"] = Convert.ToBase64String(RandomBytes(1_500_000)) }));
        Assert.Equal(2L, fault.Code);
        Assert.Contains("loomworks_attachment_max_mb", fault.Message, StringComparison.Ordinal);
        Assert.Contains("1 MB", fault.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM ir_attachment WHERE name = 'big.bin'"));
        var after = Directory.Exists(FolderOf(_server.Db)) ? Directory.GetFiles(FolderOf(_server.Db), "*",
            SearchOption.AllDirectories).Length : 0;
        Assert.Equal(before, after);

        // Writing oversized content to an existing row is refused the same way and leaves the row as it was.
        var id = await CreateAsync(new() { ["name"] = "small.bin", ["datas"] = Convert.ToBase64String(RandomBytes(10)) });
        var original = await ReadAsync(id);
        fault = await Assert.ThrowsAsync<FaultException>(() => CallAsync("ir.attachment", "write",
            [new List<object?> { id }, new Dictionary<string, object?> { ["raw"] = new string('x', 1_100_000) }]));
        Assert.Contains("loomworks_attachment_max_mb", fault.Message, StringComparison.Ordinal);
        Assert.Equal(original["store_fname"], (await ReadAsync(id))["store_fname"]);
        await AssertServerUpAsync();
    }

    [Theory]
    [InlineData("not base64 at all!")]
    [InlineData("QUJD=")]
    [InlineData("////\u00e9")]
    public async Task Malformed_base64_is_a_user_error_and_nothing_is_stored(string datas)
    {
        var fault = await Assert.ThrowsAsync<FaultException>(() => CreateAsync(new() { ["name"] = "bad64.bin", ["datas"] = datas }));
        Assert.Equal(2L, fault.Code);
        Assert.Contains("base64", fault.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM ir_attachment WHERE name = 'bad64.bin'"));
        var wrongType = await Assert.ThrowsAsync<FaultException>(() => CreateAsync(new() { ["name"] = "bad64.bin", ["datas"] = 12L }));
        Assert.Equal(2L, wrongType.Code);
        await AssertServerUpAsync();
    }

    [Fact]
    public async Task Another_tenant_cannot_reach_a_file_through_its_store_fname()
    {
        var secret = RandomBytes(2000);
        var id = await CreateAsync(new() { ["name"] = "secret.bin", ["datas"] = Convert.ToBase64String(secret) });
        var fname = (string)(await ReadAsync(id))["store_fname"]!;

        var forged = await CreateAsync(new() { ["name"] = "forged.bin", ["store_fname"] = fname, ["file_size"] = 2000L }, Other);
        Assert.Equal(false, (await ReadAsync(forged, Other))["datas"]);
        Assert.False(File.Exists(PathOf(Other, fname)));
        // The owner still reads it.
        Assert.Equal(Convert.ToBase64String(secret), (await ReadAsync(id))["datas"]);
    }

    [Theory]
    [InlineData("../rpc_attach/ab/abababababababababababababababababababab")]
    [InlineData("/etc/passwd")]
    [InlineData("ab/../../../../etc/passwd")]
    [InlineData("AB/ABABABABABABABABABABABABABABABABABABABAB")]
    public async Task Store_fnames_outside_the_filestore_shape_are_refused(string fname)
    {
        var fault = await Assert.ThrowsAsync<FaultException>(() =>
            CreateAsync(new() { ["name"] = "traversal.bin", ["store_fname"] = fname }, Other));
        Assert.Equal(2L, fault.Code);
        Assert.Contains("store_fname", fault.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync("SELECT count(*) FROM ir_attachment WHERE name = 'traversal.bin'", Other));

        var id = await CreateAsync(new() { ["name"] = "traversal-write.bin" }, Other);
        fault = await Assert.ThrowsAsync<FaultException>(() => CallAsync("ir.attachment", "write",
            [new List<object?> { id }, new Dictionary<string, object?> { ["store_fname"] = fname }], db: Other));
        Assert.Equal(2L, fault.Code);

        // A row changed behind the ORM's back still reads nothing from outside.
        await _postgres.ExecuteAsync(Other,
            $"UPDATE ir_attachment SET store_fname = '{fname.Replace("'", "''", StringComparison.Ordinal)}' WHERE id = {id}");
        Assert.Equal(false, (await ReadAsync(id, Other))["datas"]);
        await AssertServerUpAsync();
    }

    [Fact]
    public async Task The_storage_quota_counts_the_filestore()
    {
        var tenants = _server.App.Services.GetRequiredService<TenantStore>();
        var limits = _server.App.Services.GetRequiredService<TenantLimits>();
        var tenant = (await tenants.FindByDatabaseAsync(Other, CancellationToken.None))!;
        var files = Directory.Exists(FolderOf(Other)) ? Directory.GetFiles(FolderOf(Other), "*", SearchOption.AllDirectories).Sum(f =>
            new FileInfo(f).Length) : 0;
        var before = await limits.StorageBytesAsync(tenant, CancellationToken.None);

        var id = await CreateAsync(new() { ["name"] = "quota.bin", ["datas"] = Convert.ToBase64String(RandomBytes(900_000)) }, Other);

        var after = await limits.StorageBytesAsync(tenant, CancellationToken.None);
        var filesAfter = Directory.GetFiles(FolderOf(Other), "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.Equal(900_000, filesAfter - files);
        // The row adds a few pages at most; the 900 kB are the file's.
        Assert.InRange(after - before, 900_000, 900_000 + 256 * 1024);
        await CallAsync("ir.attachment", "unlink", [new List<object?> { id }], db: Other);
    }

    [Fact]
    public async Task The_collector_deletes_only_unreferenced_files_older_than_the_snapshot_window()
    {
        var collector = _server.App.Services.GetRequiredService<FilestoreCollector>();
        var kept = await CreateAsync(new() { ["name"] = "kept.bin", ["datas"] = Convert.ToBase64String(RandomBytes(1000)) }, Other);
        var oldGone = await CreateAsync(new() { ["name"] = "gone.bin", ["datas"] = Convert.ToBase64String(RandomBytes(1000)) }, Other);
        var youngGone = await CreateAsync(new() { ["name"] = "young.bin", ["datas"] = Convert.ToBase64String(RandomBytes(1000)) }, Other);
        var keptFile = PathOf(Other, (string)(await ReadAsync(kept, Other))["store_fname"]!);
        var oldFile = PathOf(Other, (string)(await ReadAsync(oldGone, Other))["store_fname"]!);
        var youngFile = PathOf(Other, (string)(await ReadAsync(youngGone, Other))["store_fname"]!);
        await CallAsync("ir.attachment", "unlink", [new List<object?> { oldGone, youngGone }], db: Other);

        // Beyond the 30-day default window: the row went long ago. Within it: the file must stay for restores.
        var longAgo = DateTime.UtcNow.AddDays(-31);
        File.SetLastWriteTimeUtc(oldFile, longAgo);
        File.SetLastWriteTimeUtc(youngFile, DateTime.UtcNow.AddDays(-29));
        File.SetLastWriteTimeUtc(keptFile, longAgo);

        var freed = await collector.CollectAllAsync(CancellationToken.None);

        Assert.True(freed >= 1000);
        Assert.False(File.Exists(oldFile));
        Assert.True(File.Exists(youngFile));
        Assert.True(File.Exists(keptFile));
        Assert.Equal(Convert.ToBase64String(await File.ReadAllBytesAsync(keptFile, TestContext.Current.CancellationToken)),
            (await ReadAsync(kept, Other))["datas"]);
        // A referenced file's time now counts from this pass: if its row goes, the window starts again.
        Assert.True(File.GetLastWriteTimeUtc(keptFile) > DateTime.UtcNow.AddHours(-1));
    }

    [Fact]
    public async Task An_attachment_survives_dump_and_restore_into_a_new_database()
    {
        var bytes = RandomBytes(40_000);
        var id = await CreateAsync(new() { ["name"] = "backed-up.bin", ["datas"] = Convert.ToBase64String(bytes) }, Other);
        var manager = _server.App.Services.GetRequiredService<DatabaseManager>();
        const string restored = "rpc-attach-restored";
        try
        {
            using var backup = new MemoryStream();
            await manager.DumpAsync(Other, backup, cancellationToken: TestContext.Current.CancellationToken);
            backup.Position = 0;
            await manager.RestoreAsync(restored, backup, cancellationToken: TestContext.Current.CancellationToken);

            var row = await ReadAsync(id, restored);
            Assert.Equal(Convert.ToBase64String(bytes), row["datas"]);
            Assert.True(File.Exists(PathOf(restored, (string)row["store_fname"]!)));
        }
        finally
        {
            await manager.DropAsync(restored, CancellationToken.None);
        }
    }
}
