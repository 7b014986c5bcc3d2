using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

/// <summary>
/// /web/database/restore stores nothing before it knows the caller may restore: the manager is on, the master
/// password came first and is right, a place is free in the spool and the upload fits in it.
/// </summary>
public sealed class RestoreUploadTests(PostgresFixture pg)
{
    private const string Boundary = "LoomworksUploadBoundary";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_file_sent_before_master_pwd_is_refused_before_a_byte_of_it_is_spooled(bool listDb)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, listDb ? "up-first" : "up-first-off");
        var (app, http, _) = await StartAsync(h, listDb: listDb);
        await using (app)
        using (http)
        {
            var spooled = new List<string>();
            using var body = new StreamedForm([], 64 << 20, [("master_pwd", "secret"), ("name", h.Name("target"))],
                _ => { spooled.AddRange(Spooled(h)); return Task.CompletedTask; });
            var response = await TryPostAsync(http, body);
            Assert.Empty(spooled);
            if (response is not null)
            {
                Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
                Assert.Contains(listDb ? "master_pwd must come before backup_file" : "list_db",
                    await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                response.Dispose();
            }
            Assert.Empty(Spooled(h));
            using var health = await http.GetAsync("/web/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
    }

    [Fact]
    public async Task With_the_manager_off_a_restore_is_refused_on_its_headers_alone()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "up-off-headers");
        var (app, http, port) = await StartAsync(h, listDb: false);
        await using (app)
        using (http)
        using (var client = new TcpClient())
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            var stream = client.GetStream();
            // A gigabyte is announced and none of it sent: the answer cannot wait for the body.
            await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /web/database/restore HTTP/1.1\r\nHost: x\r\n" +
                $"Content-Type: multipart/form-data; boundary={Boundary}\r\nContent-Length: 1073741824\r\n\r\n"));
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            wait.CancelAfter(TimeSpan.FromSeconds(60));
            var buffer = new byte[4096];
            var read = await stream.ReadAsync(buffer, wait.Token);
            var reply = Encoding.ASCII.GetString(buffer, 0, read);
            Assert.StartsWith("HTTP/1.1 403", reply, StringComparison.Ordinal);
            Assert.Empty(Spooled(h));
        }
    }

    [Fact]
    public async Task An_upload_beyond_the_concurrent_limit_is_refused_with_503_and_not_spooled()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "up-busy");
        var (app, http, _) = await StartAsync(h, extra: new() { ["loomworks_restore_max_uploads"] = "1" });
        await using (app)
        using (http)
        {
            var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var first = new StreamedForm([("master_pwd", "secret"), ("name", h.Name("first"))], 8 << 20, [], async sent =>
            {
                if (sent == 2 << 20)
                {
                    halfway.SetResult();
                    await release.Task;
                }
            });
            var firstPost = http.PostAsync("/web/database/restore", first, TestContext.Current.CancellationToken);
            await halfway.Task.WaitAsync(TestContext.Current.CancellationToken);
            // The first upload is being spooled (its password was right); it holds the only place.
            while (Spooled(h).Count == 0)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            using var second = new StreamedForm([("master_pwd", "secret"), ("name", h.Name("second"))], 4 << 20, [],
                _ => Task.CompletedTask);
            var refused = await TryPostAsync(http, second);
            Assert.NotNull(refused);
            using (refused)
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.NotNull(refused.Headers.RetryAfter);
                Assert.Contains("loomworks_restore_max_uploads", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            Assert.Single(Spooled(h));

            release.SetResult();
            using var done = await firstPost;
            // Zeros are no backup: refused, and its spool file removed.
            Assert.Equal(HttpStatusCode.UnprocessableEntity, done.StatusCode);
            Assert.Empty(Spooled(h));
            await h.AssertAbsentAsync(h.Name("first"));
            await h.AssertAbsentAsync(h.Name("second"));
        }
    }

    [Fact]
    public async Task An_upload_that_would_pass_the_spool_limit_is_refused_with_503_and_removed()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "up-spool");
        var (app, http, _) = await StartAsync(h, extra: new() { ["loomworks_restore_spool_max_mb"] = "1" });
        await using (app)
        using (http)
        {
            using var form = new StreamedForm([("master_pwd", "secret"), ("name", h.Name("target"))], 3 << 20, [], _ => Task.CompletedTask);
            var response = await TryPostAsync(http, form);
            Assert.NotNull(response);
            using (response)
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.Contains("loomworks_restore_spool_max_mb", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            Assert.Empty(Spooled(h));
            await h.AssertAbsentAsync(h.Name("target"));
        }
    }

    [Fact]
    public async Task A_hostile_backup_sent_to_db_restore_over_json_rpc_is_refused_naming_the_statement_and_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "up-rpc");
        var source = await h.SeedAsync("src");
        var target = h.Name("target");
        var marker = Path.Combine(Path.GetTempPath(), $"loomworks-hostile-{Guid.NewGuid():N}");
        var good = h.Scratch.File("good.zip");
        await h.Manager().DumpToFileAsync(source, good, cancellationToken: TestContext.Current.CancellationToken);
        var hostile = h.Scratch.File("hostile.zip");
        await HostileRestoreTests.RewriteDumpAsync(good, hostile, $"COPY (SELECT 1) TO PROGRAM 'touch {marker}';");
        var (app, http, _) = await StartAsync(h);
        await using (app)
        using (http)
        {
            try
            {
                var data = Convert.ToBase64String(await File.ReadAllBytesAsync(hostile, TestContext.Current.CancellationToken));
                var call = System.Text.Json.JsonSerializer.Serialize(new
                {
                    jsonrpc = "2.0", method = "call", id = 1,
                    @params = new { service = "db", method = "restore", args = new object[] { "secret", target, data } },
                });
                using var response = await http.PostAsync("/jsonrpc", new StringContent(call, Encoding.UTF8, "application/json"),
                    TestContext.Current.CancellationToken);
                var answer = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
                Assert.Contains("\"error\"", answer, StringComparison.Ordinal);
                Assert.Contains("TO PROGRAM", answer, StringComparison.Ordinal);
                Assert.False(File.Exists(marker), "the backup's program ran");
                await h.AssertAbsentAsync(target);
                Assert.Equal(0, await h.CountAsync("postgres",
                    $"SELECT count(*) FROM pg_roles WHERE rolname = '{TenantProvisioner.RoleNameFor(target)}'"));
                Assert.Empty(Spooled(h));
            }
            finally
            {
                File.Delete(marker);
            }
        }
    }

    private async Task<(LoomworksHost App, HttpClient Http, int Port)> StartAsync(ManagerHarness h, bool listDb = true,
        Dictionary<string, string>? extra = null)
    {
        var app = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(pg.Endpoint)
                .Set("data_dir", h.Scratch.Path)
                .Set("loomworks_mgmt_db", h.ManagementName)
                .Set("list_db", listDb ? "True" : "False")
                .Set("admin_passwd", "secret")
                .Set(extra);
            options.MigrateManagement = true;
        });
        return (app, app.CreateClient(redirects: false), app.Port);
    }

    /// <summary>The files in data_dir/tmp, where uploads are spooled.</summary>
    private static List<string> Spooled(ManagerHarness h)
    {
        var folder = Path.Combine(h.Scratch.Path, "tmp");
        return Directory.Exists(folder) ? Directory.EnumerateFiles(folder).ToList() : [];
    }

    /// <summary>The answer, or null when the server closed the connection before the client could read one.</summary>
    private static async Task<HttpResponseMessage?> TryPostAsync(HttpClient http, HttpContent content)
    {
        try
        {
            return await http.PostAsync("/web/database/restore", content, TestContext.Current.CancellationToken);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>
    /// A multipart restore form written as it is sent: fields, then backup_file of <c>fileBytes</c> zeros in 1 MB
    /// pieces (<c>afterPiece</c> called with the bytes sent so far after each), then more fields.
    /// </summary>
    private sealed class StreamedForm : HttpContent
    {
        private readonly (string Name, string Value)[] _before;
        private readonly long _fileBytes;
        private readonly (string Name, string Value)[] _after;
        private readonly Func<long, Task> _afterPiece;

        public StreamedForm((string, string)[] before, long fileBytes, (string, string)[] after, Func<long, Task> afterPiece)
        {
            (_before, _fileBytes, _after, _afterPiece) = (before, fileBytes, after, afterPiece);
            Headers.ContentType = MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={Boundary}");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await WriteFieldsAsync(stream, _before);
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"--{Boundary}\r\nContent-Disposition: form-data; name=\"backup_file\"; filename=\"b.zip\"\r\n" +
                "Content-Type: application/zip\r\n\r\n"));
            var piece = new byte[1 << 20];
            for (long sent = 0; sent < _fileBytes;)
            {
                var length = (int)Math.Min(piece.Length, _fileBytes - sent);
                await stream.WriteAsync(piece.AsMemory(0, length));
                sent += length;
                await _afterPiece(sent);
            }
            await stream.WriteAsync("\r\n"u8.ToArray());
            await WriteFieldsAsync(stream, _after);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"--{Boundary}--\r\n"));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        private static async Task WriteFieldsAsync(Stream stream, (string Name, string Value)[] fields)
        {
            foreach (var (name, value) in fields)
            {
                await stream.WriteAsync(Encoding.UTF8.GetBytes(
                    $"--{Boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
            }
        }
    }
}
