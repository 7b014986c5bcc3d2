using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Snapshots;

/// <summary>The REST API and the commands of snapshots and restores, on the same cluster as the pipeline tests.</summary>
public sealed partial class TenantRestoreTests
{
    private const string AdminPassword = "s3cret-admin";

    private async Task<(LoomworksHost App, HttpClient Client)> StartServerAsync()
    {
        var app = await LoomworksHost.StartAsync(options =>
        {
            options.Set("data_dir", pitr.DataDir)
                .Set("db_port", pitr.Settings.DbPort!.Value.ToString(CultureInfo.InvariantCulture))
                .Set("admin_passwd", AdminPassword);
            options.Server = pitr.Server;
        }, TestContext.Current.CancellationToken);
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + AdminPassword)));
        return (app, client);
    }

    [Fact]
    public async Task The_REST_API_takes_lists_and_deletes_snapshots_and_restores_through_a_job()
    {
        var cancel = TestContext.Current.CancellationToken;
        await TenantWithDataAsync("rs-rest");
        var before = await pitr.ContentAsync("rs-rest");
        var (app, client) = await StartServerAsync();
        await using (app)
        using (client)
        {
            var created = await client.PostAsJsonAsync("/api/v1/tenants/rs-rest/snapshots", new { name = "via rest" }, cancel);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var snapshot = await created.Content.ReadFromJsonAsync<JsonElement>(cancel);
            var id = snapshot.GetProperty("id").GetInt64();
            Assert.Equal("via rest", snapshot.GetProperty("name").GetString());
            Assert.Equal("manual", snapshot.GetProperty("snapshot_type").GetString());

            var list = await client.GetFromJsonAsync<JsonElement>("/api/v1/tenants/rs-rest/snapshots", cancel);
            Assert.Contains(list.EnumerateArray(), s => s.GetProperty("id").GetInt64() == id);

            var spare = await (await client.PostAsJsonAsync("/api/v1/tenants/rs-rest/snapshots", new { }, cancel))
                .Content.ReadFromJsonAsync<JsonElement>(cancel);
            var deleted = await client.DeleteAsync($"/api/v1/tenants/rs-rest/snapshots/{spare.GetProperty("id").GetInt64()}", cancel);
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);

            await DamageAsync("rs-rest");
            var started = await client.PostAsJsonAsync("/api/v1/tenants/rs-rest/restore", new { snapshot_id = id }, cancel);
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            var jobId = (await started.Content.ReadFromJsonAsync<JsonElement>(cancel)).GetProperty("id").GetInt64();
            var again = await client.PostAsJsonAsync("/api/v1/tenants/rs-rest/restore", new { snapshot_id = id }, cancel);
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);

            JsonElement job;
            do
            {
                await Task.Delay(200, cancel);
                job = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{jobId}", cancel);
            }
            while (job.GetProperty("state").GetString() == "running");
            Assert.Equal("done", job.GetProperty("state").GetString());
            Assert.Equal(100, job.GetProperty("progress").GetInt32());
            Assert.Equal(before, await pitr.ContentAsync("rs-rest"));
            await app.StopAsync(cancel);
        }
    }

    [Fact]
    public async Task The_REST_API_refuses_bad_credentials_and_malformed_hostile_or_oversized_input()
    {
        var cancel = TestContext.Current.CancellationToken;
        await TenantWithDataAsync("rs-rest-bad");
        var before = await pitr.ContentAsync("rs-rest-bad");
        var (app, client) = await StartServerAsync();
        await using (app)
        using (client)
        {
            using var anonymous = new HttpClient { BaseAddress = client.BaseAddress };
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/tenants/rs-rest-bad/snapshots",
                cancel)).StatusCode);
            anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:wrong")));
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/tenants/rs-rest-bad/snapshots",
                cancel)).StatusCode);
            anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", "%%%not-base64");
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/jobs/1", cancel)).StatusCode);

            async Task Expect(HttpStatusCode status, HttpResponseMessage response, string? text = null)
            {
                var body = await response.Content.ReadAsStringAsync(cancel);
                Assert.True(status == response.StatusCode, $"{response.StatusCode}: {body}");
                if (text is not null)
                {
                    Assert.Contains(text, body, StringComparison.Ordinal);
                }
            }

            StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore", Json("{not json"),
                cancel));
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore",
                Json("{\"snapshot_id\": \"x\"}"), cancel));
            await Expect(HttpStatusCode.RequestEntityTooLarge, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore",
                Json("{\"lsn\": \"" + new string('0', 100_000) + "\"}"), cancel));
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore",
                Json("{\"lsn\": \"0/0'; DROP DATABASE \\\"rs-rest-bad\\\"; --\"}"), cancel), "is not an LSN");
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore",
                Json("{\"time\": \"2999-01-01T00:00:00Z\"}"), cancel), "in the future");
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore", Json("{}"), cancel),
                "exactly one");
            await Expect(HttpStatusCode.NotFound, await client.PostAsync("/api/v1/tenants/rs-rest-bad/restore",
                Json("{\"snapshot_id\": 99999999}"), cancel), "no snapshot");
            await Expect(HttpStatusCode.NotFound, await client.PostAsync("/api/v1/tenants/no-such/snapshots", Json("{}"), cancel),
                "no tenant");
            await Expect(HttpStatusCode.BadRequest, await client.PostAsync("/api/v1/tenants/rs-rest-bad/snapshots",
                Json("{\"name\": \"" + new string('n', 300) + "\"}"), cancel), "at most");
            await Expect(HttpStatusCode.NotFound, await client.DeleteAsync("/api/v1/tenants/rs-rest-bad/snapshots/99999999", cancel));
            await Expect(HttpStatusCode.NotFound, await client.GetAsync("/api/v1/jobs/99999999", cancel), "no job");
            await Expect(HttpStatusCode.BadRequest, await client.GetAsync("/api/v1/tenants/" + new string('a', 5000) + "/snapshots",
                cancel),
                "subdomain");

            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/web/health", cancel)).StatusCode);
            await app.StopAsync(cancel);
        }
        Assert.Equal(before, await pitr.ContentAsync("rs-rest-bad"));
    }

    [Fact]
    public async Task The_commands_report_bad_input_clearly_and_change_nothing()
    {
        await TenantWithDataAsync("rs-cli");
        var before = await pitr.ContentAsync("rs-cli");
        string[] Flags(params string[] arguments) =>
            [.. arguments, "--data-dir", pitr.DataDir, "--db-port", pitr.Settings.DbPort!.Value.ToString(CultureInfo.InvariantCulture),
                "--log-level", "warn"];

        var (code, output) = await LoomworksProcess.RunAsync(Flags("restore", "rs-cli", "--lsn", "nonsense", "--yes"));
        Assert.Equal(1, code);
        Assert.Contains("is not an LSN", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("restore", "rs-cli", "--time", "2001-01-01T00:00:00Z", "--yes"));
        Assert.Equal(1, code);
        Assert.Contains("before the oldest backup", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("snapshot", "list", "no-such-tenant"));
        Assert.Equal(1, code);
        Assert.Contains("no tenant 'no-such-tenant'", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("snapshot", "create", "rs-cli", "--name", "from the command line"));
        Assert.True(code == 0, output);
        var id = output.Split(' ')[1];
        // Without --yes and without a terminal the restore is refused before anything runs.
        (code, output) = await LoomworksProcess.RunAsync(Flags("restore", "rs-cli", "--snapshot", id));
        Assert.Equal(1, code);
        Assert.Contains("Add --yes", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("restore", "--undo", "99999999", "--yes"));
        Assert.Equal(1, code);
        Assert.Contains("no restore job 99999999", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("backup", "run", "--type", "weekly"));
        Assert.NotEqual(0, code);
        Assert.Contains("weekly", output, StringComparison.Ordinal);

        (code, output) = await LoomworksProcess.RunAsync(Flags("backup", "info"));
        Assert.True(code == 0, output);
        Assert.Contains("stanza: loomworks", output, StringComparison.Ordinal);

        Assert.Equal(before, await pitr.ContentAsync("rs-cli"));
        Assert.True(pitr.ScratchIsClean());
    }
}
