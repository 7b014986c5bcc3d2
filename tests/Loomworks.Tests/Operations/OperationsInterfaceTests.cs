using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Operations;

/// <summary>The real <c>loomworks</c> undo/ops/rewind commands and the REST API against tenants in a management database.</summary>
public sealed class OperationsInterfaceTests(PostgresFixture postgres)
{
    private const string Password = "s3cret-master";

    private async Task<(PooledDatabase Acme, PooledDatabase Other, string Mgmt)> TenantsAsync(string test)
    {
        var mgmt = await postgres.CreateDatabaseAsync($"opsi_{test}_mgmt");
        await using (var connection = new NpgsqlConnection(postgres.Endpoint.ConnectionString(mgmt) + ";Pooling=false"))
        {
            await connection.OpenAsync();
            await SchemaMigrator.ApplyAsync(connection, ManagementMigrations.All, CancellationToken.None);
        }
        await postgres.ExecuteAsync(mgmt, $"""
            INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES
                ('Acme', 'acme', 'opsi_{test}_acme', 'active'), ('Other', 'other', 'opsi_{test}_other', 'active'),
                ('New', 'new', 'opsi_{test}_new', 'provisioning')
            """);
        var acme = await ErpShape.CreateAsync(postgres, $"opsi_{test}_acme");
        var other = await ErpShape.CreateAsync(postgres, $"opsi_{test}_other");
        return (acme, other, mgmt);
    }

    private string[] Db(string mgmt) =>
        ["--db-host", postgres.Endpoint.Host, "--db-port", $"{postgres.Endpoint.Port}", "--db-user", postgres.Endpoint.Username,
            "--loomworks-mgmt-db", mgmt];

    private Task<(int ExitCode, string Output)> RunAsync(string mgmt, string[] arguments,
        IReadOnlyDictionary<string, string>? environment = null) =>
        LoomworksProcess.RunAsync([.. arguments, .. Db(mgmt)], environment);

    private static Task<long> OrderAsync(PooledDatabase ds, string session = "s1") => ErpShape.RunAsync(ds,
        new OperationInfo("create", "sale.order", session, "agent-1"), """
        WITH o AS (INSERT INTO sale_order (name) VALUES ('S1') RETURNING id)
        INSERT INTO sale_order_line (order_id, name) SELECT id, 'Line' FROM o
        """);

    [Fact]
    public async Task Cli_undo_ops_list_and_rewind_work_and_bad_input_is_refused_with_nothing_changed()
    {
        var (acme, other, mgmt) = await TenantsAsync("cli");
        var op = await OrderAsync(acme);
        await OrderAsync(other);
        var otherState = await ErpShape.StateAsync(other);

        var list = await RunAsync(mgmt, ["ops", "list", "acme", "--model", "sale.order"]);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains($"{op}\t", list.Output);
        Assert.Contains("create\tsale.order", list.Output);

        var state = await ErpShape.StateAsync(acme);
        foreach (var bad in new[]
                 {
                     new[] { "undo", "acme", "-5" }, ["undo", "acme", "abc"], ["undo", "acme", "99999999999999999999999"],
                     ["undo", "acme", "424242"], ["undo", "nosuch", $"{op}"], ["undo", "new", $"{op}"], ["undo", "acme"],
                     ["undo", "acme", $"{op}", "--session", "s1"], ["undo", "acme", "--session", "nosuch"],
                     ["ops", "list", "acme", "--since", "yesterday"], ["ops", "list", "acme", "--limit", "0"],
                     ["ops", "list", "acme", "--limit", "100000"], ["ops", "list", "acme", "--session", "x'; DROP TABLE sale_order; --"],
                     ["rewind", "acme", "--to", "31/02/2025"], ["rewind", "acme"], ["undo", "acme'; DROP TABLE sale_order; --", "1"],
                 })
        {
            var (exitCode, output) = await RunAsync(mgmt, bad);
            if (bad[0] == "ops" && bad.Contains("--session"))
            {
                Assert.Equal(0, exitCode); // a filter with SQL in it is a value: it simply matches nothing
                Assert.DoesNotContain($"{op}\t", output);
                continue;
            }
            Assert.True(exitCode != 0, $"{string.Join(' ', bad)} succeeded: {output}");
            Assert.DoesNotContain("   at ", output); // a sentence, not a stack trace
            Assert.Equal(state, await ErpShape.StateAsync(acme));
        }
        Assert.Contains("does not exist", (await RunAsync(mgmt, ["undo", "acme", "424242"])).Output);
        Assert.Contains("no tenant 'nosuch'", (await RunAsync(mgmt, ["undo", "nosuch", "1"])).Output);
        Assert.Contains("positive whole number", (await RunAsync(mgmt, ["undo", "acme", "-5"])).Output);

        var undo = await RunAsync(mgmt, ["undo", "acme", $"{op}"]);
        Assert.Equal(0, undo.ExitCode);
        Assert.Contains($"undone operation {op}", undo.Output);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme, "SELECT count(*) FROM sale_order"));
        var twice = await RunAsync(mgmt, ["undo", "acme", $"{op}"]);
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains("already undone", twice.Output);
        Assert.Equal(otherState, await ErpShape.StateAsync(other)); // same id, other tenant: untouched

        var at = await ErpShape.ScalarAsync<DateTime>(acme, "SELECT clock_timestamp()");
        await OrderAsync(acme, "s2");
        await OrderAsync(acme, "s2");
        var session = await RunAsync(mgmt, ["undo", "acme", "--session", "s2"]);
        Assert.Equal(0, session.ExitCode);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme, "SELECT count(*) FROM sale_order"));
        await OrderAsync(acme, "s3");
        var rewind = await RunAsync(mgmt, ["rewind", "acme", "--to", new DateTimeOffset(at, TimeSpan.Zero).ToString("o")]);
        Assert.Equal(0, rewind.ExitCode);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme, "SELECT count(*) FROM sale_order"));
        var tooEarly = await RunAsync(mgmt, ["rewind", "acme", "--to", "2001-01-01T00:00:00Z"]);
        Assert.Equal(1, tooEarly.ExitCode);
        Assert.Contains("loomworks restore acme --time 2001-01-01T00:00:00.000Z", tooEarly.Output);
    }

    [Theory]
    [InlineData("undo:locked")]
    [InlineData("undo:applied")]
    [InlineData("undo:marked")]
    [InlineData("undo:before-commit")]
    public async Task Kill_9_in_the_middle_of_an_undo_leaves_nothing_undone_and_the_next_run_undoes_all(string step)
    {
        var (acme, _, mgmt) = await TenantsAsync("crash_" + step[5..].Replace('-', '_'));
        await OrderAsync(acme);
        var state = await ErpShape.StateAsync(acme);
        var unlink = await ErpShape.RunAsync(acme, new OperationInfo("unlink", "sale.order"), "DELETE FROM sale_order");

        var crashed = await RunAsync(mgmt, ["undo", "acme", $"{unlink}"],
            new Dictionary<string, string> { [CrashPoint.Variable] = step });

        Assert.Equal(137, crashed.ExitCode);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme, "SELECT count(*) FROM sale_order"));
        Assert.False(await ErpShape.ScalarAsync<bool>(acme, $"SELECT undone FROM loomworks_ai_operation_log WHERE id = {unlink}"));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme,
            "SELECT count(*) FROM loomworks_ai_operation_log WHERE operation_type = 'undo'"));

        var again = await RunAsync(mgmt, ["undo", "acme", $"{unlink}"]);
        Assert.Equal(0, again.ExitCode);
        Assert.Equal(state, await ErpShape.StateAsync(acme));
    }

    [Fact]
    public async Task Rest_lists_and_undoes_behind_admin_basic_auth_and_refuses_bad_input()
    {
        var (acme, other, mgmt) = await TenantsAsync("rest");
        var op = await OrderAsync(acme);
        await OrderAsync(other, "other-session");
        await using var app = await LoomworksHost.StartAsync(options =>
            options.UseCluster(postgres.Endpoint).Set("loomworks_mgmt_db", mgmt).Set("admin_passwd", Password));
        using var http = app.CreateClient();
        var admin = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"admin:{Password}")));

        async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpMethod method, string path, AuthenticationHeaderValue? auth)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Authorization = auth;
            using var response = await http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var state = await ErpShape.StateAsync(acme);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, $"/api/v1/tenants/acme/operations/{op}/undo",
            null)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, $"/api/v1/tenants/acme/operations/{op}/undo",
            new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:wrong"))))).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Get, "/api/v1/tenants/acme/operations",
            new AuthenticationHeaderValue("Basic", "%%%not-base64" + new string('A', 10000)))).Status);
        foreach (var (path, expected, says) in new[]
                 {
                     ($"/api/v1/tenants/acme/operations/-1/undo", HttpStatusCode.BadRequest, "positive whole number"),
                     ($"/api/v1/tenants/acme/operations/99999999999999999999/undo", HttpStatusCode.BadRequest, "positive whole number"),
                     ($"/api/v1/tenants/acme/operations/1%3BDROP%20TABLE%20sale_order/undo", HttpStatusCode.BadRequest,
                         "positive whole number"),
                     ($"/api/v1/tenants/acme/operations/424242/undo", HttpStatusCode.NotFound, "does not exist"),
                     ($"/api/v1/tenants/nosuch/operations/{op}/undo", HttpStatusCode.NotFound, "no tenant"),
                     ($"/api/v1/tenants/new/operations/{op}/undo", HttpStatusCode.Conflict, "provisioning"),
                     ($"/api/v1/tenants/acme/operations/{op}/undo?force=maybe", HttpStatusCode.BadRequest, "force"),
                 })
        {
            var (status, body) = await SendAsync(HttpMethod.Post, path, admin);
            Assert.True(status == expected, $"{path}: {status} {body}");
            Assert.Contains(says, body);
        }
        foreach (var (query, says) in new[]
                 {
                     ("since=not-a-time", "since must be a time"), ("until=2025-13-45", "until must be a time"),
                     ("limit=-3", "limit must be"), ("limit=5000", "limit must be between"),
                         ("session=" + new string('x', 300), "longer than 200"),
                 })
        {
            var (status, body) = await SendAsync(HttpMethod.Get, $"/api/v1/tenants/acme/operations?{query}", admin);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains(says, body);
        }
        Assert.Equal(state, await ErpShape.StateAsync(acme));

        var listed = await SendAsync(HttpMethod.Get,
            "/api/v1/tenants/acme/operations?session=s1&agent=agent-1&model=sale.order&since=2000-01-01T00:00:00Z", admin);
        Assert.Equal(HttpStatusCode.OK, listed.Status);
        Assert.Contains($"\"id\":{op}", listed.Body);
        Assert.DoesNotContain("other-session", listed.Body);
        var injected = await SendAsync(HttpMethod.Get, "/api/v1/tenants/acme/operations?session=s1'%20OR%20'1'='1", admin);
        Assert.Equal("[]", injected.Body);

        var undone = await SendAsync(HttpMethod.Post, $"/api/v1/tenants/acme/operations/{op}/undo", admin);
        Assert.Equal(HttpStatusCode.OK, undone.Status);
        Assert.Contains($"\"operationId\":{op}", undone.Body);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(acme, "SELECT count(*) FROM sale_order"));
        var twice = await SendAsync(HttpMethod.Post, $"/api/v1/tenants/acme/operations/{op}/undo", admin);
        Assert.Equal(HttpStatusCode.Conflict, twice.Status);
        Assert.Contains("already undone", twice.Body);
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(other, "SELECT count(*) FROM sale_order"));
        await app.StopAsync();
    }
}
