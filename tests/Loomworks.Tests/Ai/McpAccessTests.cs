using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Rpc;

namespace Loomworks.Tests.Ai;

/// <summary>Who may use /mcp, how much, and what hostile input gets: keys, tenants, the daily quota, refusals.</summary>
public sealed class McpAccessTests(McpAccessTests.Fixture fixture) : IClassFixture<McpAccessTests.Fixture>
{
    private const string A = "mcp-acc-a";
    private const string B = "mcp-acc-b";
    private const string Quota = "mcp-acc-quota";
    private const int QuotaLimit = 3;

    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public McpServer Server { get; private set; } = null!;
        public PostgresFixture Postgres => postgres;

        public async ValueTask InitializeAsync() => Server = await McpServer.StartAsync(postgres, "mcp_access",
            new TenantRequest("A", A, "admin", "admin"), new TenantRequest("B", B, "admin", "admin"),
            new TenantRequest("Quota", Quota, "admin", "admin", MaxAiOperationsDaily: QuotaLimit));

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private McpServer Server => fixture.Server;

    private static Dictionary<string, object?> NewPartner(string name) =>
        new() { ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = name } };

    [Fact]
    public async Task A_missing_wrong_or_revoked_key_gets_401_with_a_challenge_and_a_valid_one_gets_through()
    {
        var host = McpServer.HostOf(A);
        var (status, challenge, body) = await Server.RawAsync(host, null, McpServer.ListToolsBody);
        Assert.Equal(401, status);
        Assert.StartsWith("Bearer", challenge, StringComparison.Ordinal);
        Assert.Contains("Authorization: Bearer", body, StringComparison.Ordinal);

        (status, challenge, _) = await Server.RawAsync(host, "Bearer " + new string('a', 40), McpServer.ListToolsBody);
        Assert.Equal(401, status);
        Assert.Contains("invalid_token", challenge, StringComparison.Ordinal);

        var key = await Server.ApiKeyAsync(A, "to be revoked");
        await using (var client = await Server.ClientAsync(A, key))
        {
            Assert.NotEmpty(await client.ListToolsAsync(cancellationToken: TestContext.Current.CancellationToken));
        }
        var keyId = (long)((List<object?>)(await Server.RpcAsync(A, "res.users.apikeys", "search",
            [new List<object?> { new List<object?> { "name", "=", "to be revoked" } }]))!)[0]!;
        await Server.RpcAsync(A, "res.users.apikeys", "revoke", [new List<object?> { keyId }]);
        (status, challenge, _) = await Server.RawAsync(host, "Bearer " + key, McpServer.ListToolsBody);
        Assert.Equal(401, status);
        Assert.Contains("invalid_token", challenge, StringComparison.Ordinal);
    }

    private const string SearchBody = """
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_records","arguments":{"model":"res.partner","limit":1}}}
        """;

    private static string CreateBody(string name) =>
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"create_records\",\"arguments\":"
        + "{\"model\":\"res.partner\",\"values\":{\"name\":" + JsonSerializer.Serialize(name) + "}}}}";

    [Fact]
    public async Task A_remembered_key_is_refused_the_moment_it_is_revoked_and_still_served_when_only_other_rights_moved()
    {
        var host = McpServer.HostOf(A);
        var key = await Server.ApiKeyAsync(A, "remembered");
        // The first call checks the key in full and remembers it; the later ones confirm it with their own statement.
        for (var i = 0; i < 2; i++)
        {
            var (status, _, body) = await Server.RawAsync(host, "Bearer " + key, SearchBody);
            Assert.Equal(200, status);
            Assert.Contains("\"structuredContent\":{\"records\":", body, StringComparison.Ordinal);
        }

        // Another key moves the tenant's security stamp without touching this one: the call runs again, checked in full.
        await Server.ApiKeyAsync(A, "another");
        var (moved, _, movedBody) = await Server.RawAsync(host, "Bearer " + key, CreateBody("After the stamp moved"));
        Assert.Equal(200, moved);
        Assert.Contains("operation_id", movedBody, StringComparison.Ordinal);
        Assert.Equal(1L, await PartnersNamedAsync("After the stamp moved"));

        var keyId = (long)((List<object?>)(await Server.RpcAsync(A, "res.users.apikeys", "search",
            [new List<object?> { new List<object?> { "name", "=", "remembered" } }]))!)[0]!;
        await Server.RpcAsync(A, "res.users.apikeys", "revoke", [new List<object?> { keyId }]);
        var (read, readChallenge, _) = await Server.RawAsync(host, "Bearer " + key, SearchBody);
        Assert.Equal(401, read);
        Assert.Contains("invalid_token", readChallenge, StringComparison.Ordinal);
        var (change, _, _) = await Server.RawAsync(host, "Bearer " + key, CreateBody("After the revocation"));
        Assert.Equal(401, change);
        Assert.Equal(0L, await PartnersNamedAsync("After the revocation"));
    }

    private async Task<long> PartnersNamedAsync(string name) =>
        ((List<object?>)(await Server.RpcAsync(A, "res.partner", "search",
            [new List<object?> { new List<object?> { "name", "=", name } }]))!).Count;

    [Fact]
    public async Task Tenant_As_key_on_Bs_host_is_refused_and_naming_A_there_is_audited()
    {
        var key = await Server.ApiKeyAsync(A, "a's agent");
        var (status, _, _) = await Server.RawAsync(McpServer.HostOf(B), "Bearer " + key, McpServer.ListToolsBody);
        Assert.Equal(401, status);

        var databaseA = (await Server.TenantAsync(A)).DatabaseName;
        var databaseB = (await Server.TenantAsync(B)).DatabaseName;
        (status, _, var body) = await Server.RawAsync(McpServer.HostOf(B), "Bearer " + key, McpServer.ListToolsBody,
            new() { ["X-Odoo-Database"] = databaseA });
        Assert.Equal(403, status);
        Assert.Contains("another tenant", body, StringComparison.Ordinal);
        Assert.Equal(1L, await fixture.Postgres.ScalarAsync<long>(Server.Management,
            "SELECT count(*) FROM loomworks_audit_cross_tenant WHERE credential_database = $1 AND routed_database = $2 AND refused",
            databaseA, databaseB));
    }

    [Fact]
    public async Task Past_the_daily_quota_changes_are_refused_with_count_limit_and_reset_reads_go_on_and_the_next_day_resets_it()
    {
        var key = await Server.ApiKeyAsync(Quota);
        await using var client = await Server.ClientAsync(Quota, key);
        for (var i = 0; i < QuotaLimit; i++)
        {
            await client.OkAsync("create_records", NewPartner($"Quota {i}"));
        }
        var refusal = await client.RefusedAsync("create_records", NewPartner("One too many"));
        Assert.Contains($"used {QuotaLimit} of its {QuotaLimit} AI operations today", refusal, StringComparison.Ordinal);
        Assert.Contains("T00:00:00Z (midnight UTC)", refusal, StringComparison.Ordinal);
        Assert.Equal(QuotaLimit, (await client.OkAsync("count_records", new()
        {
            ["model"] = "res.partner", ["domain"] = new object[] { new object[] { "name", "=like", "Quota %" } },
        })).GetProperty("count").GetInt64());

        // An agent's RPC call (it carries loomworks_agent_id) counts against the same quota; a person's does not.
        var db = (await Server.TenantAsync(Quota)).DatabaseName;
        using var rpc = new RpcClient(Server.Url);
        var fault = await Assert.ThrowsAsync<FaultException>(() => rpc.ObjectAsync(db, 2, "admin", "res.partner", "create",
            [new Dictionary<string, object?> { ["name"] = "Rpc agent" }],
            new() { ["context"] = new Dictionary<string, object?> { ["loomworks_agent_id"] = "script" } }));
        Assert.Contains("max_ai_operations_daily", fault.Message, StringComparison.Ordinal);
        await rpc.ObjectAsync(db, 2, "admin", "res.partner", "create", [new Dictionary<string, object?> { ["name"] = "By hand" }]);

        using var admin = Server.Host.CreateClient();
        admin.DefaultRequestHeaders.Authorization = Loomworks.Tests.Tenancy.TenancyHost.Basic("admin", McpServer.MasterPassword);
        var shown = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/tenants/{Quota}", TestContext.Current.CancellationToken);
        Assert.Equal(QuotaLimit, shown.GetProperty("ai_usage").GetProperty("used").GetInt32());
        Assert.Equal(QuotaLimit, shown.GetProperty("ai_usage").GetProperty("limit").GetInt32());

        // Midnight UTC: yesterday's count no longer applies.
        var tenant = await Server.TenantAsync(Quota);
        await fixture.Postgres.ExecuteAsync(Server.Management,
            "UPDATE loomworks_tenant_ai_usage SET day = day - 1 WHERE tenant_id = $1", tenant.Id);
        await client.OkAsync("create_records", NewPartner("Quota after midnight"));
    }

    [Fact]
    public async Task Hostile_arguments_are_refused_with_a_message_and_change_nothing()
    {
        var key = await Server.ApiKeyAsync(A, "hostile");
        await using var client = await Server.ClientAsync(A, key);
        var count = (await client.OkAsync("count_records", new() { ["model"] = "res.partner" })).GetProperty("count").GetInt64();

        var injected = await client.RefusedAsync("search_records", new()
        {
            ["model"] = "res.partner",
            ["domain"] = new object[] { new object[] { "name = 'x'; DROP TABLE res_partner; --", "=", "x" } },
        });
        Assert.Contains("name = 'x'; DROP TABLE", injected, StringComparison.Ordinal);
        var quoted = await client.RefusedAsync("search_records", new() { ["model"] = "res.partner\"; DROP TABLE res_partner; --" });
        Assert.Contains("there is no model", quoted, StringComparison.Ordinal);
        var ids = await client.RefusedAsync("delete_records", new()
        {
            ["model"] = "res.partner", ["ids"] = Enumerable.Range(1, 100_000).ToArray(),
        });
        Assert.Contains("holds 100000 ids", ids, StringComparison.Ordinal);
        var unknown = await client.RefusedAsync("read_records",
            new() { ["model"] = "res.partner", ["ids"] = new List<long> { 1 }, ["sql"] = "x" });
        Assert.Contains("has no argument 'sql'", unknown, StringComparison.Ordinal);

        var huge = new StringBuilder("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"create_records","arguments":""")
            .Append("""{"model":"res.partner","values":{"name":"Huge","comment":" """).Append('x', 10 * 1024 * 1024).Append("\"}}}}");
        var (status, _, body) = await Server.RawAsync(McpServer.HostOf(A), "Bearer " + key, huge.ToString());
        Assert.Equal(413, status);
        Assert.Contains("at most", body, StringComparison.Ordinal);

        Assert.Equal(count, (await client.OkAsync("count_records", new() { ["model"] = "res.partner" })).GetProperty("count").GetInt64());
        Assert.NotEmpty(await client.ListToolsAsync(cancellationToken: TestContext.Current.CancellationToken));
    }
}
