using System.Text;
using Loomworks.Operations;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// Change capture as a client of the external API meets it: a sale order with two lines created, and an order written,
/// by JSON-RPC <c>execute_kw</c> on a tenant as provisioned, beside the same calls on a tenant whose capture triggers
/// were removed. Both log every call as an operation, so the rows differ by the triggers alone. The two take turns call
/// by call, as in the operations scenario.
/// </summary>
public sealed class OperationsRpcScenario : IScenario
{
    private const int Batch = 200;
    private const string Captured = "bench_rpc_captured";
    private const string Uncaptured = "bench_rpc_uncaptured";
    private static int _writes;

    public string Name => "operations-rpc";
    public string Description => "create/write of a sale order through JSON-RPC on a tenant with vs without the capture triggers";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await ThrowawayCluster.StartAsync(dir => new EmbeddedClusterOptions { DataDir = dir, Port = 55620 },
            cancellationToken);
        await using var server = await BenchRpcServer.StartAsync(cluster.Endpoint, 55621, [Captured, Uncaptured], async (tenant, ct) =>
        {
            await using var partner = new NpgsqlCommand(
                "INSERT INTO res_partner (name, complete_name, active) VALUES ('Azure Interior', 'Azure Interior', true)", tenant);
            await partner.ExecuteNonQueryAsync(ct);
            if (tenant.Database == Uncaptured)
            {
                await ChangeCapture.RemoveAsync(tenant, ErpTenantSetup.CapturedTables, ct);
            }
        }, cancellationToken);
        var partners = new Dictionary<string, long>();
        var orders = new Dictionary<string, long>();
        foreach (var db in new[] { Captured, Uncaptured })
        {
            partners[db] = await CallAsync(server.Http, db, "res.partner", "search", "[[[\"name\", \"=\", \"Azure Interior\"]]]",
                cancellationToken);
            orders[db] = await CreateAsync(server.Http, db, partners[db], cancellationToken);
        }
        var createWith = new List<double>();
        var createWithout = new List<double>();
        var writeWith = new List<double>();
        var writeWithout = new List<double>();
        for (var run = -1; run < runs; run++)
        {
            var create = await OperationsScenario.InterleavedAsync(Batch, Math.Max(run, 0), cancellationToken,
                () => CreateAsync(server.Http, Captured, partners[Captured], cancellationToken),
                () => CreateAsync(server.Http, Uncaptured, partners[Uncaptured], cancellationToken));
            var write = await OperationsScenario.InterleavedAsync(Batch, Math.Max(run, 0), cancellationToken,
                () => WriteAsync(server.Http, Captured, orders[Captured], cancellationToken),
                () => WriteAsync(server.Http, Uncaptured, orders[Uncaptured], cancellationToken));
            if (run < 0)
            {
                continue; // warm-up: JIT, pools, plans, the password cache
            }
            createWith.Add(create[0]);
            createWithout.Add(create[1]);
            writeWith.Add(write[0]);
            writeWithout.Add(write[1]);
        }
        return
        [
            new ScenarioResult($"create-rpc-x{Batch}-triggers", createWith, createWithout, "same calls, tenant without capture triggers",
                "a sale order with two lines per call; goal ratio <= 1.30"),
            new ScenarioResult($"write-rpc-x{Batch}-triggers", writeWith, writeWithout, "same calls, tenant without capture triggers",
                "one order's customer reference per call; goal ratio <= 1.30"),
        ];
    }

    private static Task<long> CreateAsync(HttpClient http, string db, long partnerId, CancellationToken ct) =>
        CallAsync(http, db, "sale.order", "create", $$"""
            [{"partner_id": {{partnerId}}, "order_line": [[0, 0, {"name": "Desk", "product_uom_qty": 2, "price_unit": 150}],
                [0, 0, {"name": "Chair", "product_uom_qty": 4, "price_unit": 45.5}]]}]
            """, ct);

    private static Task<long> WriteAsync(HttpClient http, string db, long orderId, CancellationToken ct) =>
        CallAsync(http, db, "sale.order", "write", $$"""
            [[{{orderId}}], {"client_order_ref": "PO-{{Interlocked.Increment(ref _writes)}}"}]
            """, ct);

    /// <summary>One execute_kw as admin; returns the result when it is a number (a new id) and 1 for any other result.</summary>
    private static async Task<long> CallAsync(HttpClient http, string db, string model, string method, string args, CancellationToken ct)
    {
        var body = $$$"""
            {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {"service": "object", "method": "execute_kw",
             "args": ["{{{db}}}", 2, "admin", "{{{model}}}", "{{{method}}}", {{{args}}}]}}
            """;
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/jsonrpc") { Content = content };
        request.Headers.Add("X-Loomworks-Tenant", BenchRpcServer.Subdomain(db));
        using var response = await http.SendAsync(request, ct);
        using var answer = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        if (!answer.RootElement.TryGetProperty("result", out var result))
        {
            throw new InvalidOperationException($"{model}.{method} on {db} failed: {answer.RootElement}");
        }
        return result.ValueKind switch
        {
            System.Text.Json.JsonValueKind.Number => result.GetInt64(),
            System.Text.Json.JsonValueKind.Array when result.GetArrayLength() > 0 => result[0].GetInt64(),
            _ => 1,
        };
    }
}
