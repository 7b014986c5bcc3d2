using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Ai;

/// <summary>Stateless MCP: two instances on the same cluster and management database serve one session's calls in turn.</summary>
public sealed class McpTwoInstanceTests(PostgresFixture postgres)
{
    private const string Tenant = "mcp-two";

    [Fact]
    public async Task Two_instances_serve_the_same_sessions_calls_alternately_and_undo_session_on_either_takes_all_back()
    {
        await using var one = await McpServer.StartAsync(postgres, "mcp_two", new TenantRequest("Two", Tenant, "admin", "admin"));
        await using var two = await McpServer.SecondInstanceAsync(postgres, one.Management);
        var key = await one.ApiKeyAsync(Tenant, "alternating agent");
        await using var first = await one.ClientAsync(Tenant, key);
        await using var second = await McpServer.ConnectAsync(two.Url, McpServer.HostOf(Tenant), key);

        var created = await first.OkAsync("create_records", new()
        {
            ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = "Two Instances" },
        });
        var session = created.GetProperty("session_id").GetString()!;
        var id = created.GetProperty("ids")[0].GetInt64();
        for (var i = 0; i < 4; i++)
        {
            var client = i % 2 == 0 ? second : first;
            await client.OkAsync("update_records", new()
            {
                ["model"] = "res.partner", ["ids"] = new[] { id }, ["session_id"] = session,
                ["values"] = new Dictionary<string, object?> { ["comment"] = $"call {i}" },
            });
        }
        var operations = (await second.OkAsync("list_operations", new() { ["session_id"] = session })).GetProperty("operations");
        Assert.Equal(5, operations.GetArrayLength());
        Assert.Single(operations.EnumerateArray().Select(o => o.GetProperty("agent_id").GetString()).Distinct());

        var undone = await second.OkAsync("undo_session", new() { ["session_id"] = session });
        Assert.Equal(5, undone.GetProperty("operations").GetArrayLength());
        Assert.Equal(0, (await first.OkAsync("count_records", new()
        {
            ["model"] = "res.partner", ["domain"] = new object[] { new object[] { "id", "=", id } },
        })).GetProperty("count").GetInt64());
    }
}
