using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Loomworks.Operations;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// The tenant console's operations page on a tenant whose log holds 1,000,000 operations (inserted with SQL): the server
/// time of a signed-in GET of the first page and of a page deep in the log (keyset, the cursor half-way down), as
/// ASP.NET Core's own <c>http.server.request.duration</c> records it, beside the page's own statement run raw through
/// Npgsql in the same run; the time a client on loopback sees is printed too. Each run takes <see cref="Requests"/> of
/// each, alternating, and keeps their p99. Then every console page's HTML with the CSS and JS it loads is weighed, and
/// any address outside the host it names is counted.
/// </summary>
public sealed partial class ConsoleScenario : IScenario
{
    private const string Db = "bench_console";
    private const int Operations = 1_000_000;
    private const int Requests = 1000;

    /// <summary>Every page of the tenant console, as a tenant administrator sees it.</summary>
    private static readonly string[] Pages =
    [
        "/console", "/console/operations", "/console/operations/{op}", "/console/snapshots", "/console/apikeys",
        "/console/records/res.partner", "/console/records/res.partner/new", "/console/records/product.product",
        "/console/records/sale.order",
    ];

    public string Name => "console";
    public string Description => "operations page of a 1,000,000-operation tenant (first and deep page, p99) vs its raw SQL; page sizes";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        // Free ports, not fixed ones: other benches and test runs on the machine hold theirs.
        await using var cluster = await ThrowawayCluster.StartAsync(
            dir => new EmbeddedClusterOptions { DataDir = dir, Port = Scratch.FreePort() }, cancellationToken);
        await using var server = await BenchRpcServer.StartAsync(cluster.Endpoint, Scratch.FreePort(), [Db], FillLogAsync,
            cancellationToken);
        await SignInAsync(server.Http, cancellationToken);
        await using var dataSources = new TenantDataSources(cluster.Endpoint);
        var tenant = dataSources.For(Db);
        long deepCursor;
        await using (var middle = tenant.CreateCommand("SELECT max(id) / 2 FROM loomworks_ai_operation_log"))
        {
            deepCursor = (long)(await middle.ExecuteScalarAsync(cancellationToken))!;
        }
        var first = new TimelineQuery();
        var deep = new TimelineQuery(Before: deepCursor);
        var medians = new List<double>[4];
        for (var k = 0; k < 4; k++)
        {
            medians[k] = [];
        }
        var pageFirst = new List<double>();
        var pageDeep = new List<double>();
        var sqlFirst = new List<double>();
        var sqlDeep = new List<double>();
        var clientFirst = new List<double>();
        var clientDeep = new List<double>();
        using var serverTimes = new ServerTimes();
        async Task<double> ServerTimeAsync(string path)
        {
            var client = await BenchRunner.TimeAsync(() => GetAsync(server.Http, path, cancellationToken));
            return await serverTimes.NextAsync(path, client);
        }
        for (var run = -1; run < runs; run++)
        {
            var times = new List<double>[4];
            for (var k = 0; k < 4; k++)
            {
                times[k] = new List<double>(Requests);
            }
            serverTimes.ClientTimes.Clear();
            for (var i = 0; i < Requests; i++)
            {
                times[0].Add(await ServerTimeAsync("/console/operations"));
                times[1].Add(await BenchRunner.TimeAsync(() => RawAsync(tenant, first, cancellationToken)));
                times[2].Add(await ServerTimeAsync("/console/operations?before=" + deepCursor.ToString(CultureInfo.InvariantCulture)));
                times[3].Add(await BenchRunner.TimeAsync(() => RawAsync(tenant, deep, cancellationToken)));
            }
            if (run < 0)
            {
                continue; // warm-up: JIT, pools, plans, the session cache
            }
            for (var k = 0; k < 4; k++)
            {
                medians[k].Add(BenchRunner.Median(times[k]));
            }
            pageFirst.Add(P99(times[0]));
            sqlFirst.Add(P99(times[1]));
            pageDeep.Add(P99(times[2]));
            sqlDeep.Add(P99(times[3]));
            clientFirst.Add(P99(serverTimes.ClientTimes.Where(t => t.Path == "/console/operations").Select(t => t.Ms).ToList()));
            clientDeep.Add(P99(serverTimes.ClientTimes.Where(t => t.Path != "/console/operations").Select(t => t.Ms).ToList()));
        }
        var sizes = await WeighPagesAsync(server.Http, tenant, cancellationToken);
        return
        [
            new ScenarioResult("console-operations-first-page-p99", pageFirst, sqlFirst, "the page's SQL, raw, p99",
                $"server time, p99 of {Requests} GETs per run, spread {Spread(pageFirst)}; raw spread {Spread(sqlFirst)}; p50 page "
                + $"{Spread(medians[0])}, raw {Spread(medians[1])}; as the client saw it p99 {Spread(clientFirst)}; "
                + "goal <= 30 ms and <= 2x raw"),
            new ScenarioResult("console-operations-deep-page-p99", pageDeep, sqlDeep, "the page's SQL, raw, p99",
                $"cursor {deepCursor}; server time spread {Spread(pageDeep)}; raw spread {Spread(sqlDeep)}; p50 page "
                + $"{Spread(medians[2])}, raw {Spread(medians[3])}; as the client saw it p99 {Spread(clientDeep)}; "
                + "goal <= 30 ms and <= 2x raw"),
            .. sizes,
        ];
    }

    /// <summary>One million operations of four agents and people over sixty days, each with its summary stored.</summary>
    private static async Task FillLogAsync(NpgsqlConnection tenant, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        await using (var partners = new NpgsqlCommand("""
            INSERT INTO res_partner (name, complete_name, active)
            SELECT 'Partner ' || g, 'Partner ' || g, true FROM generate_series(1, 50) g
            """, tenant))
        {
            await partners.ExecuteNonQueryAsync(ct);
        }
        await using (var fill = new NpgsqlCommand($"""
            INSERT INTO loomworks_ai_operation_log (operation_type, model_name, session_id, agent_id, user_id, tool_name, record_ids,
                values_before, values_after, state, execution_time_ms, change_count, created_at)
            SELECT (ARRAY['create', 'write', 'unlink'])[1 + g % 3], (ARRAY['res.partner', 'sale.order', 'product.product'])[1 + g % 3],
                   'session-' || (g / 50), CASE WHEN g % 4 = 0 THEN NULL ELSE 'agent-' || (g % 4) END, 2, 'bench',
                   ARRAY[1 + g % 50]::bigint[], jsonb_build_object((1 + g % 50)::text, jsonb_build_object('name', 'before ' || g)),
                   jsonb_build_object((1 + g % 50)::text, jsonb_build_object('name', 'after ' || g)), 'done', 3, 1,
                   now() - make_interval(secs => ({Operations} - g) * 5.0)
            FROM generate_series(1, {Operations}) g
            """, tenant))
        {
            fill.CommandTimeout = 600;
            await fill.ExecuteNonQueryAsync(ct);
        }
        await using (var analyze = new NpgsqlCommand("VACUUM ANALYZE loomworks_ai_operation_log", tenant))
        {
            analyze.CommandTimeout = 600;
            await analyze.ExecuteNonQueryAsync(ct);
        }
        await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"  {Operations:N0} operations inserted in {watch.Elapsed.TotalSeconds:F1} s"));
    }

    private static async Task SignInAsync(HttpClient http, CancellationToken ct)
    {
        using var content = new StringContent($$$"""
            {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {"db": "{{{Db}}}", "login": "admin", "password": "admin"}}
            """, Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/web/session/authenticate") { Content = content };
        request.Headers.Add("X-Loomworks-Tenant", BenchRpcServer.Subdomain(Db));
        using var response = await http.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!body.Contains("\"result\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"sign-in failed: {body}");
        }
    }

    private static async Task<string> GetAsync(HttpClient http, string path, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("X-Loomworks-Tenant", BenchRpcServer.Subdomain(Db));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode || response.RequestMessage?.RequestUri?.AbsolutePath.StartsWith("/web/login",
                StringComparison.Ordinal) == true)
        {
            throw new InvalidOperationException($"GET {path} answered {(int)response.StatusCode} at {response.RequestMessage?.RequestUri}");
        }
        return body;
    }

    private static async Task RawAsync(PooledDatabase tenant, TimelineQuery query, CancellationToken ct)
    {
        var (sql, parameters) = OperationTimeline.PageStatement(query);
        await using var command = tenant.CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(p);
        }
        await using var reader = await command.ExecuteReaderAsync(ct);
        var values = new object[15];
        while (await reader.ReadAsync(ct))
        {
            reader.GetValues(values);
        }
    }

    /// <summary>Every page's HTML plus the CSS and JS it loads, in bytes (goal 100 KB), and addresses of other hosts.</summary>
    private static async Task<IReadOnlyList<ScenarioResult>> WeighPagesAsync(HttpClient http, PooledDatabase tenant, CancellationToken ct)
    {
        long op;
        await using (var newest = tenant.CreateCommand("SELECT max(id) FROM loomworks_ai_operation_log"))
        {
            op = (long)(await newest.ExecuteScalarAsync(ct))!;
        }
        var results = new List<ScenarioResult>();
        var assets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var page in Pages)
        {
            var path = page.Replace("{op}", op.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            var html = await GetAsync(http, path, ct);
            long bytes = Encoding.UTF8.GetByteCount(html);
            foreach (Match m in AssetReference().Matches(html))
            {
                var url = m.Groups["url"].Value;
                if (!url.StartsWith('/') || url.StartsWith("//", StringComparison.Ordinal))
                {
                    continue; // counted below with every other address of another host
                }
                if (!assets.TryGetValue(url, out var size))
                {
                    size = Encoding.UTF8.GetByteCount(await GetAsync(http, url, ct));
                    assets[url] = size;
                }
                bytes += size;
            }
            var foreign = ForeignAddress().Count(html);
            var kb = bytes / 1024.0;
            results.Add(new ScenarioResult($"console-page-size {page}", [kb], [100], "goal (KB)",
                string.Create(CultureInfo.InvariantCulture,
                    $"{bytes} bytes of HTML+CSS+JS; {foreign} reference(s) to another host; figures in KB, not ms")));
        }
        return results;
    }

    /// <summary>
    /// The server's own time of each request: ASP.NET Core's hosting meter records <c>http.server.request.duration</c>
    /// when a request ends, from the first byte read to the last byte written, without the client's share.
    /// </summary>
    private sealed class ServerTimes : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(string? Route, double Ms)> _recorded = new();

        public List<(string Path, double Ms)> ClientTimes { get; } = [];

        public ServerTimes()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument is { Name: "http.server.request.duration", Meter.Name: "Microsoft.AspNetCore.Hosting" })
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
            {
                string? route = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "http.route")
                    {
                        route = tag.Value as string;
                    }
                }
                _recorded.Enqueue((route, seconds * 1000));
            });
            _listener.Start();
        }

        /// <summary>
        /// The server time of the request to <paramref name="path"/> that just answered; <paramref name="client"/> is what
        /// it took as the client saw it.
        /// </summary>
        public async Task<double> NextAsync(string path, double client)
        {
            ClientTimes.Add((path, client));
            var waited = Stopwatch.StartNew();
            while (true)
            {
                if (_recorded.TryDequeue(out var recorded))
                {
                    if (recorded.Route == "/console/operations")
                    {
                        return recorded.Ms;
                    }
                    continue; // a request of something else (none expected): not this page's
                }
                if (waited.Elapsed > TimeSpan.FromSeconds(5))
                {
                    throw new InvalidOperationException($"no server time was recorded for {path}");
                }
                await Task.Yield();
            }
        }

        public void Dispose() => _listener.Dispose();
    }

    private static double P99(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(sorted.Length * 0.99) - 1)];
    }

    private static string Spread(List<double> values) => values.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture,
        $"{values.Min():F2}-{values.Max():F2} ms");

    [GeneratedRegex("""<(?:link|script)\b[^>]*\b(?:href|src)="(?<url>[^"]+)""", RegexOptions.IgnoreCase)]
    private static partial Regex AssetReference();

    [GeneratedRegex("""(?:src|href|action)="(?:https?:)?//""", RegexOptions.IgnoreCase)]
    private static partial Regex ForeignAddress();
}
