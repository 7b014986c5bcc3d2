using System.Text.Json;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Ai;

/// <summary>The MCP endpoint with the official C# client: every tool, sessions and the log, undo, dry runs, snapshots.</summary>
public sealed class McpToolTests(McpToolTests.Fixture fixture) : IClassFixture<McpToolTests.Fixture>
{
    public const string Tenant = "mcp-tools";

    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public McpServer Server { get; private set; } = null!;
        public string Key { get; private set; } = "";

        public async ValueTask InitializeAsync()
        {
            Server = await McpServer.StartAsync(postgres, "mcp_tools", new TenantRequest("Tools", Tenant, "admin", "admin"));
            Key = await Server.ApiKeyAsync(Tenant, "claude on the books");
        }

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private static readonly string[] NameField = ["name"];

    private McpServer Server => fixture.Server;

    private static string[] Names(JsonElement records, string field) =>
        records.EnumerateArray().Select(r => r.GetProperty(field).GetString()!).ToArray();

    [Fact]
    public async Task Every_tool_is_listed_with_a_schema_a_description_and_its_hints()
    {
        await using var client = await Server.ClientAsync(Tenant, fixture.Key);
        var tools = await client.ListToolsAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(["aggregate_records", "count_records", "create_records", "create_snapshot", "delete_records", "describe_model",
            "list_models", "list_operations", "list_snapshots", "read_records", "search_records", "undo_operation", "undo_session",
            "update_records"], tools.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var tool in tools.Select(t => t.ProtocolTool))
        {
            Assert.False(string.IsNullOrWhiteSpace(tool.Description));
            foreach (var property in tool.InputSchema.GetProperty("properties").EnumerateObject())
            {
                Assert.True(property.Value.TryGetProperty("description", out _), $"{tool.Name}.{property.Name} has no description");
            }
        }
        var hints = tools.ToDictionary(t => t.Name, t => t.ProtocolTool.Annotations!);
        Assert.True(hints["search_records"].ReadOnlyHint);
        Assert.True(hints["list_models"].ReadOnlyHint);
        Assert.True(hints["delete_records"].DestructiveHint);
        Assert.True(hints["undo_session"].DestructiveHint);
        Assert.True(hints["undo_operation"].DestructiveHint);
        Assert.False(hints["create_records"].ReadOnlyHint);
        Assert.True(hints["update_records"].IdempotentHint);
    }

    [Fact]
    public async Task The_readers_answer_models_fields_records_and_counts()
    {
        await using var client = await Server.ClientAsync(Tenant, fixture.Key);
        var models = (await client.OkAsync("list_models")).GetProperty("models");
        Assert.Contains(models.EnumerateArray(), m => m.GetProperty("model").GetString() == "res.partner"
            && m.GetProperty("access").GetProperty("unlink").GetBoolean());
        var partner = await client.OkAsync("describe_model", new() { ["model"] = "res.partner" });
        var parent = partner.GetProperty("fields").GetProperty("parent_id");
        Assert.Equal("many2one", parent.GetProperty("type").GetString());
        Assert.Equal("res.partner", parent.GetProperty("relation").GetString());
        Assert.True(partner.GetProperty("fields").GetProperty("name").TryGetProperty("label", out _));

        var created = await client.OkAsync("create_records", new()
        {
            ["model"] = "res.partner",
            ["values"] = new[] { new Dictionary<string, object?> { ["name"] = "Reader Alpha" }, new() { ["name"] = "Reader Beta" } },
        });
        var ids = created.GetProperty("ids").EnumerateArray().Select(i => i.GetInt64()).ToArray();
        Assert.Equal(2, ids.Length);
        var found = await client.OkAsync("search_records", new()
        {
            ["model"] = "res.partner",
            ["domain"] = new object[] { new object[] { "name", "=like", "Reader %" } },
            ["fields"] = NameField,
            ["order"] = "name desc",
            ["limit"] = 5,
        });
        Assert.Equal(["Reader Beta", "Reader Alpha"], Names(found.GetProperty("records"), "name"));
        var count = await client.OkAsync("count_records", new()
        {
            ["model"] = "res.partner", ["domain"] = new object[] { new object[] { "name", "=like", "Reader %" } },
        });
        Assert.Equal(2, count.GetProperty("count").GetInt64());
        var read = await client.OkAsync("read_records", new() { ["model"] = "res.partner", ["ids"] = ids, ["fields"] = NameField });
        Assert.Equal(["Reader Alpha", "Reader Beta"], Names(read.GetProperty("records"), "name"));
    }

    [Fact]
    public async Task An_agents_creates_updates_and_deletes_are_logged_in_one_session_and_undo_session_restores_the_exact_prior_state()
    {
        var kept = (long)(await Server.RpcAsync(Tenant, "res.partner", "create",
            [new Dictionary<string, object?> { ["name"] = "Kept Customer", ["email"] = "kept@example.com" }]))!;
        var doomed = (long)(await Server.RpcAsync(Tenant, "res.partner", "create",
            [new Dictionary<string, object?> { ["name"] = "Doomed Customer", ["child_ids"] =
                new List<object?> { new List<object?> { 0L, 0L, new Dictionary<string, object?> { ["name"] = "Doomed Contact" } } } }]))!;
        var before = await StateAsync(kept, doomed);

        await using var client = await Server.ClientAsync(Tenant, fixture.Key, "claude-desktop");
        var created = await client.OkAsync("create_records", new()
        {
            ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = "Agent Made" },
        });
        var session = created.GetProperty("session_id").GetString()!;
        Assert.StartsWith("mcp-", session, StringComparison.Ordinal);
        Assert.True(created.GetProperty("operation_id").GetInt64() > 0);
        var made = created.GetProperty("ids")[0].GetInt64();
        var updated = await client.OkAsync("update_records", new()
        {
            ["model"] = "res.partner", ["ids"] = new[] { kept }, ["values"] = new Dictionary<string, object?> { ["email"] = "agent@x.io" },
            ["session_id"] = session,
        });
        Assert.Equal(session, updated.GetProperty("session_id").GetString());
        await client.OkAsync("delete_records", new() { ["model"] = "res.partner", ["ids"] = new[] { doomed }, ["session_id"] = session });
        Assert.NotEqual(before, await StateAsync(kept, doomed));

        var operations = (await client.OkAsync("list_operations", new() { ["session_id"] = session })).GetProperty("operations");
        Assert.Equal(["unlink", "write", "create"], operations.EnumerateArray().Select(o => o.GetProperty("operation_type").GetString()));
        Assert.Equal(["delete_records", "update_records", "create_records"],
            operations.EnumerateArray().Select(o => o.GetProperty("tool_name").GetString()));
        Assert.All(operations.EnumerateArray(), o =>
        {
            Assert.Equal("claude-desktop 1.2.3 (key: claude on the books)", o.GetProperty("agent_id").GetString());
            Assert.Equal(2, o.GetProperty("user_id").GetInt64());
            Assert.True(o.GetProperty("execution_time_ms").GetInt32() >= 0);
            Assert.Equal(JsonValueKind.Null, o.GetProperty("snapshot_id").ValueKind); // PITR is off on this server
        });
        Assert.Contains("no pre-AI snapshot", created.GetProperty("snapshot_note").GetString(), StringComparison.Ordinal);

        var undone = await client.OkAsync("undo_session", new() { ["session_id"] = session });
        Assert.Equal(3, undone.GetProperty("operations").GetArrayLength());
        Assert.Equal(before, await StateAsync(kept, doomed));
        Assert.Equal(0L, (long)(await Server.RpcAsync(Tenant, "res.partner", "search_count",
            [new List<object?> { new List<object?> { "id", "=", made } }]))!);

        // The undo is itself an operation: undoing it redoes the delete.
        var redo = await client.OkAsync("undo_operation", new() { ["operation_id"] = undone.GetProperty("operations")[0]
            .GetProperty("undo_operation_id").GetInt64() });
        Assert.True(redo.GetProperty("operation_id").GetInt64() > 0);
        Assert.Equal(0L, (long)(await Server.RpcAsync(Tenant, "res.partner", "search_count",
            [new List<object?> { new List<object?> { "id", "=", doomed } }]))!);
    }

    [Fact]
    public async Task A_dry_run_changes_nothing_logs_nothing_and_reports_every_row_the_capture_saw_cascades_included()
    {
        var parent = (long)(await Server.RpcAsync(Tenant, "res.partner", "create",
            [new Dictionary<string, object?> { ["name"] = "Dry Parent", ["child_ids"] = new List<object?>
            {
                new List<object?> { 0L, 0L, new Dictionary<string, object?> { ["name"] = "Dry Child One" } },
                new List<object?> { 0L, 0L, new Dictionary<string, object?> { ["name"] = "Dry Child Two" } },
            } }]))!;
        var before = await StateAsync(parent, parent);
        await using var client = await Server.ClientAsync(Tenant, fixture.Key);
        var session = "dry-" + Guid.NewGuid().ToString("N");

        var update = await client.OkAsync("update_records", new()
        {
            ["model"] = "res.partner", ["ids"] = new[] { parent }, ["values"] = new Dictionary<string, object?> { ["name"] = "Wet" },
            ["dry_run"] = true, ["session_id"] = session,
        });
        // The write, and what it recomputed: the children's complete_name and the parent's own, row by row.
        var rows = update.GetProperty("changes").EnumerateArray().ToList();
        Assert.All(rows, r => Assert.Equal("update", r.GetProperty("kind").GetString()));
        Assert.All(rows, r => Assert.Equal("res_partner", r.GetProperty("table").GetString()));
        Assert.Equal("Dry Parent", rows[0].GetProperty("before").GetProperty("name").GetString());
        Assert.Equal("Wet", rows[0].GetProperty("after").GetProperty("name").GetString());
        Assert.Equal(["Wet", "Wet, Dry Child One", "Wet, Dry Child Two"], rows.Select(r => r.GetProperty("after")
            .GetProperty("complete_name").GetString()).Distinct().Where(n => n!.StartsWith("Wet", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal));
        Assert.Equal(rows.Count, update.GetProperty("change_count").GetInt64());

        var delete = await client.OkAsync("delete_records", new()
        {
            ["model"] = "res.partner", ["ids"] = new[] { parent }, ["dry_run"] = true, ["session_id"] = session,
        });
        var deleted = delete.GetProperty("changes").EnumerateArray()
            .Where(c => c.GetProperty("kind").GetString() == "delete" && c.GetProperty("table").GetString() == "res_partner")
            .Select(c => c.GetProperty("before").GetProperty("name").GetString()).Order(StringComparer.Ordinal);
        Assert.Equal(["Dry Parent"], deleted);
        // The children's parent_id is set null by the foreign key (ondelete set null): the capture reports those rows too.
        var orphaned = delete.GetProperty("changes").EnumerateArray()
            .Where(c => c.GetProperty("kind").GetString() == "update" && c.GetProperty("after").GetProperty("parent_id").ValueKind
                == JsonValueKind.Null && c.GetProperty("before").GetProperty("parent_id").ValueKind == JsonValueKind.Number)
            .Select(c => c.GetProperty("after").GetProperty("name").GetString()).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(["Dry Child One", "Dry Child Two"], orphaned);
        Assert.Equal(delete.GetProperty("change_count").GetInt64(), delete.GetProperty("changes").GetArrayLength());

        var create = await client.OkAsync("create_records", new()
        {
            ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = "Never Made" }, ["dry_run"] = true,
        });
        var inserted = Assert.Single(create.GetProperty("changes").EnumerateArray(), c => c.GetProperty("kind").GetString() == "insert");
        Assert.Equal("Never Made", inserted.GetProperty("after").GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, inserted.GetProperty("before").ValueKind);

        Assert.Equal(before, await StateAsync(parent, parent));
        Assert.Equal(0L, (long)(await Server.RpcAsync(Tenant, "res.partner", "search_count",
            [new List<object?> { new List<object?> { "name", "=", "Never Made" } }]))!);
        Assert.Equal(0, (await client.OkAsync("list_operations", new() { ["session_id"] = session })).GetProperty("operations")
            .GetArrayLength());
    }

    [Fact]
    public async Task Aggregate_records_groups_and_sums_through_read_group()
    {
        await using var client = await Server.ClientAsync(Tenant, fixture.Key);
        await client.OkAsync("create_records", new()
        {
            ["model"] = "res.partner",
            ["values"] = new[]
            {
                new Dictionary<string, object?> { ["name"] = "Agg Co", ["is_company"] = true, ["color"] = 5 },
                new() { ["name"] = "Agg One", ["color"] = 2 }, new() { ["name"] = "Agg Two", ["color"] = 3 },
            },
        });
        var groups = (await client.OkAsync("aggregate_records", new()
        {
            ["model"] = "res.partner", ["domain"] = new object[] { new object[] { "name", "=like", "Agg %" } },
            ["groupby"] = new List<string> { "is_company" }, ["fields"] = new List<string> { "color:sum", "id:count" },
            ["orderby"] = "is_company",
        })).GetProperty("groups").EnumerateArray().ToList();
        Assert.Equal(2, groups.Count);
        Assert.Equal([5L, 5L], groups.Select(g => g.GetProperty("color").GetInt64()));
        Assert.Equal([2L, 1L], groups.Select(g => g.GetProperty("__count").GetInt64()));
        var refusal = await client.RefusedAsync("aggregate_records", new()
        {
            ["model"] = "res.partner", ["groupby"] = new List<string> { "no_such_field" }, ["fields"] = new List<string> { "id:count" },
        });
        Assert.Contains("no_such_field", refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snapshots_are_listed_and_without_PITR_create_snapshot_says_why_it_cannot()
    {
        await using var client = await Server.ClientAsync(Tenant, fixture.Key);
        Assert.Equal(JsonValueKind.Array, (await client.OkAsync("list_snapshots")).GetProperty("snapshots").ValueKind);
        var refusal = await client.RefusedAsync("create_snapshot", new() { ["name"] = "before the agent" });
        Assert.Contains("pgBackRest", refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_TypeScript_SDK_lists_and_calls_every_tool_over_the_2025_11_25_handshake()
    {
        var folder = Path.Combine(SourceFolder(), "clients");
        if (!Directory.Exists(Path.Combine(folder, "node_modules")))
        {
            var (npmExit, npmOutput) = await RunAsync("npm", folder, "ci", "--no-audit", "--no-fund");
            Assert.True(npmExit == 0, npmOutput);
        }
        var key = await Server.ApiKeyAsync(Tenant, "typescript agent");
        var database = (await Server.TenantAsync(Tenant)).DatabaseName;
        var (exitCode, output) = await RunAsync("node", folder, "mcp_client.mjs", Server.Url, database,
            key);
        Assert.True(exitCode == 0, output);
        Assert.Contains("OK", output, StringComparison.Ordinal);
        var agents = await Server.RpcAsync(Tenant, "loomworks.ai.operation.log", "search_read",
            [new List<object?> { new List<object?> { "tool_name", "=", "create_records" }, new List<object?> { "agent_id", "ilike",
                "typescript agent" } }], new() { ["fields"] = new List<object?> { "agent_id" } });
        Assert.NotEmpty((List<object?>)agents!);
    }

    private static string SourceFolder([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string workingDirectory, params string[] arguments)
    {
        var info = new System.Diagnostics.ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        using var process = System.Diagnostics.Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>Every column of the partners involved (and their children), as the database holds them.</summary>
    private async Task<string> StateAsync(long first, long second)
    {
        var db = (await Server.TenantAsync(Tenant)).DatabaseName;
        return (await Server.Host.Get<Loomworks.Postgres.TenantDataSources>().For(db).CreateCommand(
            $"SELECT coalesce(string_agg(to_jsonb(p)::text, '|' ORDER BY id), '') FROM res_partner p " +
            $"WHERE id IN ({first}, {second}) OR parent_id IN ({first}, {second})").ExecuteScalarAsync() as string)!;
    }
}
