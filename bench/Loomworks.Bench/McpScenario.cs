using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// The MCP endpoint beside JSON-RPC in the same run at the same concurrency: search_records of 80 partners against
/// search_read, update_records of one row against write; a session's first change against a later one; and the
/// daily quota's check on its own.
/// </summary>
public sealed class McpScenario : IScenario
{
    private const int Concurrency = 16;
    private const int WarmUpRounds = 4;
    private const int RequestsPerRound = 800;
    private const string Db = "bench_mcp";

    public string Name => "mcp";
    public string Description => "MCP search_records / update_records vs JSON-RPC search_read / write (concurrency 16); first change "
        + "of a session vs a later one; the quota check";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await ThrowawayCluster.StartAsync(
            dir => new EmbeddedClusterOptions { DataDir = dir, Port = 55640, MaxConnections = 200 }, cancellationToken);
        await using var server = await BenchRpcServer.StartAsync(cluster.Endpoint, 55641, [Db], async (tenant, ct) =>
        {
            await using var seed = new NpgsqlCommand("""
                INSERT INTO res_partner (name, complete_name, email, phone, active, is_company)
                SELECT 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.test', '+32 2 ' || g, true, false
                FROM generate_series(1, 500) g
                """, tenant);
            await seed.ExecuteNonQueryAsync(ct);
        }, cancellationToken);
        var ct = cancellationToken;
        // The runs make tens of thousands of changes: the tenant gets the largest daily quota there is.
        await ((TenantLifecycle)server.Host.Services.GetService(typeof(TenantLifecycle))!).SetLimitsAsync(
            BenchRpcServer.Subdomain(Db), new TenantLimitsChange(MaxAiOperationsDaily: TenantRules.MaxLimit), "bench", ct);
        var http = server.Http;
        var key = JsonDocument.Parse(await PostJsonAsync(http, Call("res.users.apikeys", "generate", "[\"bench\"]", "{}"), ct))
            .RootElement.GetProperty("result").GetString()!;
        await using var client = await ConnectAsync(server.Host.Url, key, ct);
        var partners = JsonDocument.Parse(await PostJsonAsync(http, Call("res.partner", "search", "[[]]", "{}"), ct))
            .RootElement.GetProperty("result").EnumerateArray().Select(e => e.GetInt64()).ToArray();

        var searchArgs = new Dictionary<string, object?>
        {
            ["model"] = "res.partner", ["domain"] = new object[] { new object[] { "email", "!=", false } },
            ["fields"] = new[] { "name", "email", "phone" }, ["limit"] = 80,
        };
        var searchBody = Call("res.partner", "search_read", """[[["email","!=",false]]]""",
            """{"fields":["name","email","phone"],"limit":80}""");
        async Task McpSearch() => Check(await client.CallToolAsync("search_records", searchArgs, cancellationToken: ct));
        // The same call as the bytes a client sends, posted as the JSON-RPC baseline posts its own: the server's cost
        // beside the server's cost, without the SDK client's share of the two cores.
        const string rawSearchBody = """
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_records","arguments":{"model":"res.partner",
            "domain":[["email","!=",false]],"fields":["name","email","phone"],"limit":80}}}
            """;
        async Task McpRawSearch() => await PostMcpAsync(http, key, rawSearchBody, ct);
        async Task RpcSearch() => await PostJsonAsync(http, searchBody, ct);
        var session = "bench-" + Guid.NewGuid().ToString("N");
        var next = 0;
        long Row() => partners[Interlocked.Increment(ref next) % partners.Length];
        async Task McpUpdate() => Check(await client.CallToolAsync("update_records", new Dictionary<string, object?>
        {
            ["model"] = "res.partner", ["ids"] = new[] { Row() }, ["session_id"] = session,
            ["values"] = new Dictionary<string, object?> { ["comment"] = "mcp " + next },
        }, cancellationToken: ct));
        async Task RpcWrite() => await PostJsonAsync(http, Call("res.partner", "write",
            string.Create(CultureInfo.InvariantCulture, $"[[{Row()}], {{\"comment\": \"rpc {next}\"}}]"), "{}"), ct);

        for (var i = 0; i < WarmUpRounds; i++)
        {
            await RoundAsync(RpcSearch, RequestsPerRound);
            await RoundAsync(McpSearch, RequestsPerRound);
            await RoundAsync(McpRawSearch, RequestsPerRound);
            await RoundAsync(RpcWrite, RequestsPerRound / 2);
            await RoundAsync(McpUpdate, RequestsPerRound / 2);
        }
        var (mcpSearch, rpcSearch, mcpUpdate, rpcWrite) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
        var mcpRawSearch = new List<double>();
        var (firstChange, laterChange, quotaCheck, baselineQuery) = (new List<double>(), new List<double>(), new List<double>(),
            new List<double>());
        var tenant = (await ((TenantCache)server.Host.Services.GetService(typeof(TenantCache))!).ByDatabaseAsync(Db, ct))!;
        var quota = (AiOperationQuota)server.Host.Services.GetService(typeof(AiOperationQuota))!;
        var management = (ManagementDatabase)server.Host.Services.GetService(typeof(ManagementDatabase))!;
        for (var i = 0; i < runs; i++)
        {
            rpcSearch.AddRange(await RoundAsync(RpcSearch, RequestsPerRound));
            mcpSearch.AddRange(await RoundAsync(McpSearch, RequestsPerRound));
            mcpRawSearch.AddRange(await RoundAsync(McpRawSearch, RequestsPerRound));
            rpcWrite.AddRange(await RoundAsync(RpcWrite, RequestsPerRound / 2));
            mcpUpdate.AddRange(await RoundAsync(McpUpdate, RequestsPerRound / 2));
            for (var s = 0; s < 100; s++)
            {
                // A new session: its first change looks the session up and takes (or, without PITR, tries) its snapshot.
                session = "bench-" + Guid.NewGuid().ToString("N");
                firstChange.Add(await TimeAsync(McpUpdate));
                laterChange.Add(await TimeAsync(McpUpdate));
            }
            for (var q = 0; q < 500; q++)
            {
                quotaCheck.Add(await TimeAsync(async () => await quota.TryConsumeAsync(tenant, ct)));
                baselineQuery.Add(await TimeAsync(async () =>
                {
                    await using var command = management.DataSource.CreateCommand("SELECT 1");
                    await command.ExecuteScalarAsync(ct);
                }));
            }
        }
        return
        [
            new ScenarioResult("mcp search_records 80 p50", mcpSearch, rpcSearch, "JSON-RPC search_read p50",
                Summary(mcpSearch, rpcSearch)),
            new ScenarioResult("mcp search_records 80, raw HTTP p50", mcpRawSearch, rpcSearch, "JSON-RPC search_read p50",
                Summary(mcpRawSearch, rpcSearch)),
            new ScenarioResult("mcp update_records 1 row p50", mcpUpdate, rpcWrite, "JSON-RPC write p50", Summary(mcpUpdate, rpcWrite)),
            new ScenarioResult("mcp first change of a session p50", firstChange, laterChange, "later change p50",
                string.Create(CultureInfo.InvariantCulture,
                    $"p99 first {P99(firstChange):F2} ms, later {P99(laterChange):F2} ms, "
                    + $"difference {P99(firstChange) - P99(laterChange):F2} ms")),
            new ScenarioResult("mcp quota check p50 (in process)", quotaCheck, baselineQuery, "SELECT 1 on loomworks_mgmt p50",
                string.Create(CultureInfo.InvariantCulture,
                    $"quota check minus a bare round trip: {BenchRunner.Median(quotaCheck) - BenchRunner.Median(baselineQuery):F3} ms")),
        ];
    }

    private static string Summary(List<double> ours, List<double> baseline) => string.Create(CultureInfo.InvariantCulture,
        $"p50 {BenchRunner.Median(ours):F2} vs {BenchRunner.Median(baseline):F2} ms, "
        + $"ratio {BenchRunner.Median(ours) / BenchRunner.Median(baseline):F2}"
        + $"; p99 {P99(ours):F2} vs {P99(baseline):F2} ms");

    private static double P99(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))];
    }

    private static void Check(CallToolResult result)
    {
        if (result.IsError == true)
        {
            throw new InvalidOperationException(result.Content.OfType<TextContentBlock>().FirstOrDefault()?.Text);
        }
    }

    private static string Call(string model, string method, string args, string kwargs) =>
        "{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"id\":1,\"params\":{\"service\":\"object\",\"method\":\"execute_kw\",\"args\":"
        + $"[\"{Db}\",2,\"admin\",\"{model}\",\"{method}\",{args},{kwargs}]}}}}";

    private static async Task<string> PostJsonAsync(HttpClient http, string body, CancellationToken ct)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/jsonrpc", content, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return text.Contains("\"result\"", StringComparison.Ordinal) ? text : throw new InvalidOperationException(text);
    }

    private static async Task PostMcpAsync(HttpClient http, string key, string body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", "2025-11-25");
        request.Headers.TryAddWithoutValidation("X-Odoo-Database", Db);
        using var response = await http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode || !text.Contains("\"structuredContent\"", StringComparison.Ordinal)
            || text.Contains("\"isError\":true", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{(int)response.StatusCode}: {text[..Math.Min(text.Length, 500)]}");
        }
    }

    private static async Task<McpClient> ConnectAsync(string url, string key, CancellationToken ct)
    {
        var http = new HttpClient();
        http.DefaultRequestHeaders.Add("X-Odoo-Database", Db);
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(url + "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + key },
        }, http, ownsHttpClient: true);
        return await McpClient.CreateAsync(transport, new McpClientOptions
        {
            ClientInfo = new Implementation { Name = "bench", Version = "1" }, ProtocolVersion = "2026-07-28",
        }, cancellationToken: ct);
    }

    private static async Task<double> TimeAsync(Func<Task> call)
    {
        var watch = Stopwatch.StartNew();
        await call();
        return watch.Elapsed.TotalMilliseconds;
    }

    private static async Task<List<double>> RoundAsync(Func<Task> call, int count)
    {
        var latencies = new ConcurrentBag<double>();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                latencies.Add(await TimeAsync(call));
            }
        }));
        return [.. latencies];
    }
}
