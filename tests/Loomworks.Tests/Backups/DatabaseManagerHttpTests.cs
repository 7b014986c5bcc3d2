using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;

namespace Loomworks.Tests.Backups;

/// <summary>Odoo's /web/database/* routes on the real web host: streamed backup, multipart restore, refusals.</summary>
public sealed class DatabaseManagerHttpTests(PostgresFixture pg)
{
    private async Task<(LoomworksHost App, HttpClient Http, int Port)> StartAsync(ManagerHarness h, string? adminPasswd = "secret",
        bool listDb = true)
    {
        var app = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(pg.Endpoint)
                .Set("data_dir", h.Scratch.Path)
                .Set("loomworks_mgmt_db", h.ManagementName)
                .Set("list_db", listDb ? "True" : "False");
            if (adminPasswd is not null)
            {
                options.Set("admin_passwd", adminPasswd);
            }
            options.MigrateManagement = true;
        });
        return (app, app.CreateClient(redirects: false), app.Port);
    }

    private static FormUrlEncodedContent Form(params (string, string)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, string>(f.Item1, f.Item2)));

    [Fact]
    public async Task The_server_watches_no_configuration_file_so_writes_under_its_working_directory_cost_it_nothing()
    {
        // A reloading appsettings.json source watches the whole working directory (data_dir in the packaged service,
        // PostgreSQL's files included) and wakes the server on every write a backup or restore makes there.
        await using var h = await ManagerHarness.CreateAsync(pg, "http-watch");
        var (app, http, _) = await StartAsync(h);
        await using (app)
        using (http)
        {
            var files = ((IConfigurationRoot)app.App.Configuration).Providers.OfType<FileConfigurationProvider>().ToList();
            Assert.NotEmpty(files);
            Assert.All(files, f => Assert.False(f.Source.ReloadOnChange, $"{f} reloads on change"));
        }
    }

    [Fact]
    public async Task Backup_streams_a_zip_and_restore_takes_it_back_as_a_new_tenant()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "http-rt");
        var source = await h.SeedAsync("src");
        var (app, http, _) = await StartAsync(h);
        await using (app)
        using (http)
        {
            using var backup = await http.PostAsync("/web/database/backup", Form(("master_pwd", "secret"), ("name", source)));
            Assert.Equal(HttpStatusCode.OK, backup.StatusCode);
            Assert.Equal("application/zip", backup.Content.Headers.ContentType?.MediaType);
            Assert.Contains($"{source}_", backup.Content.Headers.ContentDisposition?.ToString(), StringComparison.Ordinal);
            var bytes = await backup.Content.ReadAsByteArrayAsync();
            using (var zip = new ZipArchive(new MemoryStream(bytes)))
            {
                Assert.NotNull(zip.GetEntry("dump.sql"));
                Assert.NotNull(zip.GetEntry("manifest.json"));
            }

            var restored = h.Name("restored");
            using var form = new MultipartFormDataContent
            {
                { new StringContent("secret"), "master_pwd" },
                { new ByteArrayContent(bytes), "backup_file", "backup.zip" },
                { new StringContent(restored), "name" },
                { new StringContent("true"), "copy" },
            };
            using var restore = await http.PostAsync("/web/database/restore", form);
            Assert.Equal(HttpStatusCode.Redirect, restore.StatusCode);
            Assert.Equal(3, await h.CountAsync(restored, "SELECT count(*) FROM res_partner"));

            using var again = new MultipartFormDataContent
            {
                { new StringContent("secret"), "master_pwd" },
                { new ByteArrayContent(bytes), "backup_file", "backup.zip" },
                { new StringContent(restored), "name" },
            };
            using var exists = await http.PostAsync("/web/database/restore", again);
            Assert.Equal(HttpStatusCode.Conflict, exists.StatusCode);
            Assert.Contains("Could not restore database. database", await exists.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            using var list = await http.PostAsync("/web/database/list",
                new StringContent("""{"jsonrpc":"2.0","method":"call","params":{},"id":7}""", Encoding.UTF8, "application/json"));
            var listed = await list.Content.ReadAsStringAsync();
            Assert.Contains($"\"{restored}\"", listed, StringComparison.Ordinal);
            Assert.Contains("\"id\":7", listed, StringComparison.Ordinal);

            var copy = h.Name("copy");
            using var duplicate = await http.PostAsync("/web/database/duplicate",
                Form(("master_pwd", "secret"), ("name", source), ("new_name", copy), ("neutralize_database", "on")));
            Assert.Equal(HttpStatusCode.Redirect, duplicate.StatusCode);
            Assert.Equal(0, await h.CountAsync(copy, "SELECT count(*) FROM ir_cron WHERE active"));
            using var drop = await http.PostAsync("/web/database/drop", Form(("master_pwd", "secret"), ("name", copy)));
            Assert.Equal(HttpStatusCode.Redirect, drop.StatusCode);
            await h.AssertAbsentAsync(copy);
            using var dropAgain = await http.PostAsync("/web/database/drop", Form(("master_pwd", "secret"), ("name", copy)));
            Assert.Equal(HttpStatusCode.NotFound, dropAgain.StatusCode);

            using var change = await http.PostAsync("/web/database/change_password",
                Form(("master_pwd", "secret"), ("master_pwd_new", "better-secret")));
            Assert.Equal(HttpStatusCode.Redirect, change.StatusCode);
            using var old = await http.PostAsync("/web/database/drop", Form(("master_pwd", "secret"), ("name", restored)));
            Assert.Equal(HttpStatusCode.Forbidden, old.StatusCode);
            Assert.True(await h.ExistsAsync(restored));
        }
    }

    [Fact]
    public async Task Wrong_master_password_is_403_then_429_and_nothing_changes()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "http-pw");
        var source = await h.SeedAsync("src");
        var (app, http, _) = await StartAsync(h);
        await using (app)
        using (http)
        {
            for (var i = 0; i < 5; i++)
            {
                using var denied = await http.PostAsync("/web/database/drop", Form(("master_pwd", "guess"), ("name", source)));
                Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
                Assert.Contains("wrong master password", await denied.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            using var limited = await http.PostAsync("/web/database/drop", Form(("master_pwd", "secret"), ("name", source)));
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.NotNull(limited.Headers.RetryAfter);
            Assert.True(await h.ExistsAsync(source));
            using var health = await http.GetAsync("/web/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
    }

    [Theory]
    [InlineData(null, true, "admin_passwd")]
    [InlineData("secret", false, "list_db")]
    public async Task Without_master_password_or_with_list_db_off_every_route_is_403(string? adminPasswd, bool listDb, string reason)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, listDb ? "http-nopw" : "http-nolist");
        var source = await h.SeedAsync("src");
        var (app, http, _) = await StartAsync(h, adminPasswd, listDb);
        await using (app)
        using (http)
        {
            foreach (var route in new[] { "backup", "drop", "duplicate", "rename", "change_password" })
            {
                using var response = await http.PostAsync($"/web/database/{route}",
                    Form(("master_pwd", "secret"), ("name", source), ("new_name", h.Name("x")), ("master_pwd_new", "y")));
                Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
                Assert.Contains(reason, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            using var list = await http.PostAsync("/web/database/list", new StringContent("{}", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Forbidden, list.StatusCode);
            Assert.True(await h.ExistsAsync(source));
        }
    }

    [Fact]
    public async Task Truncated_or_malformed_uploads_are_refused_and_the_server_stays_up()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "http-trunc");
        var source = await h.SeedAsync("src");
        var (app, http, port) = await StartAsync(h);
        await using (app)
        using (http)
        {
            var target = h.Name("target");
            // A body that promises more than it sends, then the client goes away.
            using (var client = new TcpClient())
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                var stream = client.GetStream();
                const string boundary = "XyZ";
                var head = $"--{boundary}\r\nContent-Disposition: form-data; name=\"master_pwd\"\r\n\r\nsecret\r\n" +
                    $"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{target}\r\n" +
                    $"--{boundary}\r\nContent-Disposition: form-data; name=\"backup_file\"; " +
                    "filename=\"b.zip\"\r\n\r\nPK\u0003\u0004partial";
                var request = "POST /web/database/restore HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; " +
                    $"boundary={boundary}\r\n" +
                    $"Content-Length: 100000\r\n\r\n{head}";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
                client.Client.Shutdown(SocketShutdown.Send);
                // The server answers 4xx or resets the connection, depending on when it notices the body was cut short.
                var answer = new MemoryStream();
                try
                {
                    await stream.CopyToAsync(answer, TestContext.Current.CancellationToken);
                }
                catch (IOException)
                {
                }
                var reply = Encoding.ASCII.GetString(answer.ToArray());
                Assert.True(reply.Length == 0 || reply.StartsWith("HTTP/1.1 4", StringComparison.Ordinal), reply);
            }
            // A whole request whose zip is cut short.
            using var full = await http.PostAsync("/web/database/backup", Form(("master_pwd", "secret"), ("name", source)));
            var bytes = await full.Content.ReadAsByteArrayAsync();
            using var form = new MultipartFormDataContent
            {
                { new StringContent("secret"), "master_pwd" },
                { new ByteArrayContent(bytes[..(bytes.Length / 2)]), "backup_file", "backup.zip" },
                { new StringContent(target), "name" },
            };
            using var truncated = await http.PostAsync("/web/database/restore", form);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, truncated.StatusCode);
            Assert.Contains("truncated", await truncated.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            // Not multipart at all.
            using var notMultipart = await http.PostAsync("/web/database/restore", new StringContent("hello"));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, notMultipart.StatusCode);

            await h.AssertAbsentAsync(target);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(h.Scratch.Path, "tmp")));
            using var health = await http.GetAsync("/web/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
    }
}
