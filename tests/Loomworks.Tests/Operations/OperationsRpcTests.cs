using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Rpc;

namespace Loomworks.Tests.Operations;

/// <summary>The operation log through Odoo's external API on a tenant made with the real tenant setup: mutating calls
/// are operations annotated from the context, the log is a read-only model, and action_undo reverts them.</summary>
public sealed class OperationsRpcTests(OperationsRpcTests.Fixture fixture) : IClassFixture<OperationsRpcTests.Fixture>
{
    public const string MasterPassword = "ops-rpc-master";
    private const string Log = "loomworks.ai.operation.log";

    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public RpcServer Server { get; private set; } = null!;

        public async ValueTask InitializeAsync() =>
            Server = await RpcServer.StartAsync(postgres, "opsrpc", new Dictionary<string, string> { ["admin_passwd"] = MasterPassword });

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private RpcServer Server => fixture.Server;

    private async Task<object?> CallAsync(string model, string method, List<object?> args, Dictionary<string, object?>? kwargs = null)
    {
        using var client = new RpcClient(Server.Url);
        return await client.ObjectAsync(Server.Db, 2, "admin", model, method, args, kwargs);
    }

    private static Dictionary<string, object?> Ctx(string session, string agent = "agent-7", string tool = "crm_tool") => new()
    {
        ["context"] = new Dictionary<string, object?> { ["loomworks_session_id"] = session, ["loomworks_agent_id"] = agent,
            ["loomworks_tool_name"] = tool },
    };

    private async Task<List<Dictionary<string, object?>>> OperationsAsync(string session) =>
        ((List<object?>)(await CallAsync(Log, "search_read", [new List<object?> { new List<object?> { "session_id", "=", session } }],
            new() { ["fields"] = new List<object?> { "operation_type", "model_name", "agent_id", "tool_name", "user_id", "record_ids",
                "state", "undone", "undo_of", "values_after" }, ["order"] = "id" }))!)
        .Cast<Dictionary<string, object?>>().ToList();

    private async Task<long> LastOperationAsync(string session) => (long)(await OperationsAsync(session))[^1]["id"]!;

    private async Task<FaultException> FaultAsync(string model, string method, List<object?> args,
        Dictionary<string, object?>? kwargs = null) =>
        await Assert.ThrowsAsync<FaultException>(() => CallAsync(model, method, args, kwargs));

    private async Task<long> OrderAsync(string session, string partnerName)
    {
        var partner = (long)(await CallAsync("res.partner", "create", [new Dictionary<string, object?> { ["name"] = partnerName }],
            Ctx(session)))!;
        return (long)(await CallAsync("sale.order", "create", [new Dictionary<string, object?>
        {
            ["partner_id"] = partner,
            ["order_line"] = new List<object?>
            {
                new List<object?> { 0L, 0L, new Dictionary<string, object?> { ["name"] = "Line A", ["price_unit"] = 5.0 } },
                new List<object?> { 0L, 0L, new Dictionary<string, object?> { ["name"] = "Line B", ["price_unit"] = 7.0 } },
            },
        }], Ctx(session)))!;
    }

    private async Task<List<object?>> LinesAsync(long order) =>
        (List<object?>)((Dictionary<string, object?>)((List<object?>)(await CallAsync("sale.order", "read", [new List<object?> { order }],
            new() { ["fields"] = new List<object?> { "order_line" } }))!)[0]!)["order_line"]!;

    private async Task<long> CountAsync(string model, List<object?> domain) =>
        (long)(await CallAsync(model, "search_count", [domain],
            new() { ["context"] = new Dictionary<string, object?> { ["active_test"] = false } }))!;

    [Fact]
    public async Task Crud_calls_are_annotated_operations_and_undo_of_an_unlink_brings_the_order_back_with_its_lines()
    {
        var order = await OrderAsync("s-crud", "Crud Customer");
        var lines = await LinesAsync(order);
        await CallAsync("sale.order", "write", [new List<object?> { order },
            new Dictionary<string, object?> { ["client_order_ref"] = "PO-1" }], Ctx("s-crud"));
        await CallAsync("sale.order", "unlink", [new List<object?> { order }], Ctx("s-crud", tool: "cleanup"));
        Assert.Equal(0L, await CountAsync("sale.order.line", [new List<object?> { "order_id", "=", order }]));

        var ops = await OperationsAsync("s-crud");
        Assert.Equal(["create", "create", "write", "unlink"], ops.Select(o => o["operation_type"]));
        Assert.Equal(["res.partner", "sale.order", "sale.order", "sale.order"], ops.Select(o => o["model_name"]));
        Assert.All(ops, o => Assert.Equal("agent-7", o["agent_id"]));
        Assert.All(ops, o => Assert.Equal(2L, ((List<object?>)o["user_id"]!)[0]));
        Assert.All(ops, o => Assert.Equal("done", o["state"]));
        Assert.Equal("cleanup", ops[3]["tool_name"]);
        Assert.Equal($"[{order}]", ops[1]["record_ids"]);
        var unlink = (long)ops[3]["id"]!;

        var undo = (List<object?>)(await CallAsync(Log, "action_undo", [new List<object?> { unlink }], Ctx("s-crud-undo")))!;

        Assert.Equal(lines, await LinesAsync(order));
        Assert.Equal(1L, await CountAsync("sale.order", [new List<object?> { "id", "=", order }, new List<object?> { "client_order_ref",
            "=", "PO-1" }]));
        var undoOp = Assert.Single(await OperationsAsync("s-crud-undo"));
        Assert.Equal(undo[0], undoOp["id"]);
        Assert.Equal(unlink, undoOp["undo_of"]);

        var twice = await FaultAsync(Log, "action_undo", [new List<object?> { unlink }]);
        Assert.Equal(2, Convert.ToInt32(twice.Code, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains($"operation {unlink} was already undone", twice.Message);

        // Undoing the undo redoes the unlink.
        await CallAsync(Log, "action_undo", [new List<object?> { undo[0] }]);
        Assert.Equal(0L, await CountAsync("sale.order", [new List<object?> { "id", "=", order }]));
    }

    [Fact]
    public async Task Undo_refuses_when_a_later_operation_touched_the_rows_and_names_it_unless_forced()
    {
        var partner = (long)(await CallAsync("res.partner", "create", [new Dictionary<string, object?> { ["name"] = "Conflicted" }],
            Ctx("s-conf")))!;
        var first = await LastOperationAsync("s-conf");
        await CallAsync("res.partner", "write", [new List<object?> { partner }, new Dictionary<string, object?> { ["name"] = "Renamed" }],
            Ctx("s-conf"));
        var later = await LastOperationAsync("s-conf");

        var refused = await FaultAsync(Log, "action_undo", [new List<object?> { first }]);

        Assert.Equal(2, Convert.ToInt32(refused.Code, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains($"operation {later} changed res_partner", refused.Message);
        Assert.Equal(1L, await CountAsync("res.partner", [new List<object?> { "id", "=", partner }]));

        await CallAsync(Log, "action_undo", [new List<object?> { first }], new() { ["force"] = true });
        Assert.Equal(0L, await CountAsync("res.partner", [new List<object?> { "id", "=", partner }]));
    }

    [Fact]
    public async Task A_removed_many2many_link_comes_back_and_a_session_is_undone_newest_first()
    {
        var tag = (long)(await CallAsync("res.groups", "create", [new Dictionary<string, object?> { ["name"] = "Ops m2m group" }],
            Ctx("s-m2m")))!;
        await CallAsync("res.users", "write", [new List<object?> { 2L },
            new Dictionary<string, object?> { ["groups_id"] = new List<object?> { new List<object?> { 4L, tag } } }], Ctx("s-m2m"));
        await CallAsync("res.users", "write", [new List<object?> { 2L },
            new Dictionary<string, object?> { ["groups_id"] = new List<object?> { new List<object?> { 3L, tag } } }], Ctx("s-m2m-remove"));
        Assert.Equal(0L, await CountAsync("res.users", [new List<object?> { "groups_id", "in", new List<object?> { tag } }]));

        await CallAsync(Log, "action_undo", [new List<object?> { await LastOperationAsync("s-m2m-remove") }]);
        Assert.Equal(1L, await CountAsync("res.users", [new List<object?> { "groups_id", "in", new List<object?> { tag } }]));

        var undone = (List<object?>)(await CallAsync(Log, "action_undo_session", ["s-m2m"]))!;
        Assert.Equal(2, undone.Count);
        Assert.Equal(0L, await CountAsync("res.groups", [new List<object?> { "id", "=", tag }]));
        Assert.All((await OperationsAsync("s-m2m")), o => Assert.Equal(true, o["undone"]));
        var again = await FaultAsync(Log, "action_undo_session", ["s-m2m"]);
        Assert.Contains("no operations left to undo", again.Message);
    }

    [Fact]
    public async Task The_log_is_a_readable_model_that_nobody_can_write()
    {
        await CallAsync("res.partner", "create", [new Dictionary<string, object?> { ["name"] = "Logged" }], Ctx("s-read"));
        var id = await LastOperationAsync("s-read");
        var fields = (Dictionary<string, object?>)(await CallAsync(Log, "fields_get", [],
            new() { ["attributes"] = new List<object?> { "type", "readonly" } }))!;
        foreach (var name in new[] { "session_id", "agent_id", "user_id", "tool_name", "operation_type", "model_name", "record_ids",
            "values_before",
                     "values_after", "state", "error_message", "execution_time_ms", "snapshot_id", "undone", "undone_at" })
        {
            Assert.True(fields.ContainsKey(name), name);
        }
        Assert.Equal(1L, await CountAsync(Log, [new List<object?> { "session_id", "=", "s-read" }]));
        var row = (Dictionary<string, object?>)((List<object?>)(await CallAsync(Log, "read", [new List<object?> { id }],
            new() { ["fields"] = new List<object?> { "values_after" } }))!)[0]!;
        Assert.Contains("\"Logged\"", (string)row["values_after"]!);

        foreach (var (method, args) in new (string, List<object?>)[]
                 {
                     ("write", [new List<object?> { id }, new Dictionary<string, object?> { ["undone"] = true }]),
                     ("create", [new Dictionary<string, object?> { ["operation_type"] = "forged" }]),
                     ("unlink", [new List<object?> { id }]),
                 })
        {
            var e = await FaultAsync(Log, method, args);
            Assert.Equal(4, Convert.ToInt32(e.Code, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Contains("read-only", e.Message);
        }
        Assert.Equal(1L, await CountAsync(Log, [new List<object?> { "session_id", "=", "s-read" }]));
        Assert.Equal(0L, await CountAsync(Log, [new List<object?> { "operation_type", "=", "forged" }]));
    }

    [Fact]
    public async Task Bad_undo_input_gets_the_right_fault_and_changes_nothing()
    {
        var order = await OrderAsync("s-bad", "Bad Input Customer");
        var before = await LastOperationAsync("s-bad");
        foreach (var (args, kwargs, code, says) in new (List<object?>, Dictionary<string, object?>?, int, string)[]
                 {
                     ([new List<object?> { 987654321L }], null, 2, "operation 987654321 does not exist"),
                     ([new List<object?> { long.MaxValue }], null, 2, $"operation {long.MaxValue} does not exist"),
                     ([new List<object?> { -1L }], null, 1, "positive whole number"),
                     ([new List<object?> { "1; DROP TABLE sale_order" }], null, 1, "is not an operation id"),
                     (["abc"], null, 1, "not a list of operation ids"),
                     ([new List<object?>()], null, 1, "at least one operation id"),
                     ([Enumerable.Range(1, 1001).Select(i => (object?)(long)i).ToList()], null, 1, "at most 1000"),
                     ([new List<object?> { 1L }], new Dictionary<string, object?> { ["force"] = "yes" }, 1, "force must be True or False"),
                     ([new List<object?> { 1L }], new Dictionary<string, object?> { ["hack"] = true }, 1,
                         "unexpected keyword argument 'hack'"),
                 })
        {
            var e = await FaultAsync(Log, "action_undo", args, kwargs);
            Assert.Equal(code, Convert.ToInt32(e.Code, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Contains(says, e.Message);
        }
        var session = await FaultAsync(Log, "action_undo_session", [new string('x', 201)]);
        Assert.Contains("1 to 200 characters", session.Message);
        var annotation = await FaultAsync("res.partner", "create", [new Dictionary<string, object?> { ["name"] = "X" }],
            new() { ["context"] = new Dictionary<string, object?> { ["loomworks_session_id"] = new List<object?> { 1L } } });
        Assert.Contains("loomworks_session_id must be a string", annotation.Message);

        Assert.Equal(2, (await LinesAsync(order)).Count);
        Assert.Equal(0L, await CountAsync("res.partner", [new List<object?> { "name", "=", "X" }]));
        // Refused undos are logged as failed operations; nothing else was written.
        Assert.Equal(0L, await CountAsync(Log, [new List<object?> { "state", "!=", "failed" }, new List<object?> { "id", ">", before }]));
        Assert.True(await CountAsync(Log, [new List<object?> { "state", "=", "failed" }, new List<object?> { "id", ">", before }]) >= 1);
    }

    [Fact]
    public async Task The_admin_api_lists_operations_made_through_rpc()
    {
        await CallAsync("res.partner", "create", [new Dictionary<string, object?> { ["name"] = "Listed" }],
            Ctx("s-admin", agent: "agent-admin"));
        var op = await LastOperationAsync("s-admin");
        using var http = new HttpClient { BaseAddress = new Uri(Server.Url) };
        using var request = new HttpRequestMessage(HttpMethod.Get,
            $"/api/v1/tenants/{Server.Db.Replace('_', '-')}/operations?session=s-admin");
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"admin:{MasterPassword}")));
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains($"\"id\":{op}", body.Replace(" ", "", StringComparison.Ordinal));
        Assert.Contains("agent-admin", body);
    }
}
