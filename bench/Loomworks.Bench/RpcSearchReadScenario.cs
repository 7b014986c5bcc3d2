using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loomworks.Postgres;
using Loomworks.Rpc;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>search_read of 80 partners through JSON-RPC and XML-RPC at concurrency 16, beside the same query through raw Npgsql.</summary>
public sealed class RpcSearchReadScenario : IScenario
{
    private const int Concurrency = 16;
    private const int WarmUpRounds = 8;
    private const int RequestsPerRound = 800;
    private const string RawSql = """
        SELECT id, name, email, phone FROM res_partner WHERE active AND email IS NOT NULL
        ORDER BY complete_name, id LIMIT 80
        """;

    public string Name => "rpc-search-read";
    public string Description => "search_read 80 partners via JSON-RPC and XML-RPC (concurrency 16) vs raw Npgsql";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await ThrowawayCluster.StartAsync(
            dir => new EmbeddedClusterOptions { DataDir = dir, Port = 55610, MaxConnections = 200 }, cancellationToken);
        return await MeasureAsync(cluster.Endpoint, runs, cancellationToken);
    }

    private static async Task<IReadOnlyList<ScenarioResult>> MeasureAsync(PostgresEndpoint endpoint, int runs, CancellationToken ct)
    {
        const string db = "bench_rpc";
        await using var server = await BenchRpcServer.StartAsync(endpoint, 55611, [db], async (tenant, ct) =>
        {
            await using var seed = new NpgsqlCommand("""
                INSERT INTO res_partner (name, complete_name, email, phone, active, is_company)
                SELECT 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.test', '+32 2 ' || g, true, false
                FROM generate_series(1, 500) g
                """, tenant);
            await seed.ExecuteNonQueryAsync(ct);
        }, ct);
        var http = server.Http;
        await using var raw = NpgsqlDataSource.Create(endpoint.ConnectionString(db));

        var jsonBody = """
            {"jsonrpc":"2.0","method":"call","id":1,"params":{"service":"object","method":"execute_kw","args":
            ["bench_rpc",2,"admin","res.partner","search_read",[[["email","!=",false]]],{"fields":["name","email","phone"],"limit":80}]}}
            """;
        var xmlBody = XmlRpcCodec.WriteRequest("execute_kw", ["bench_rpc", 2L, "admin", "res.partner", "search_read",
            new List<object?> { new List<object?> { new List<object?> { "email", "!=", false } } },
            new Dictionary<string, object?> { ["fields"] = new List<object?> { "name", "email", "phone" }, ["limit"] = 80L }]);

        async Task Json()
        {
            using var content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
            using var response = await http.PostAsync("/jsonrpc", content, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            if (!text.Contains("\"result\"", StringComparison.Ordinal))
            {
                throw new InvalidOperationException(text);
            }
        }
        async Task Xml()
        {
            using var content = new ByteArrayContent(xmlBody);
            using var response = await http.PostAsync("/xmlrpc/2/object", content, ct);
            var (isFault, value) = XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync(ct));
            if (isFault || value is not List<object?> { Count: 80 })
            {
                throw new InvalidOperationException("unexpected XML-RPC answer");
            }
        }
        async Task Raw()
        {
            await using var command = raw.CreateCommand(RawSql);
            await using var reader = await command.ExecuteReaderAsync(ct);
            var rows = 0;
            while (await reader.ReadAsync(ct))
            {
                _ = (reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetString(3));
                rows++;
            }
            if (rows != 80)
            {
                throw new InvalidOperationException("raw query did not return 80 rows");
            }
        }

        // Warm-up to steady state: pools, the password check cache, and the JIT's tiered recompilation of both paths,
        // which takes thousands of calls.
        for (var i = 0; i < WarmUpRounds; i++)
        {
            await RoundAsync(Raw, RequestsPerRound);
            await RoundAsync(Json, RequestsPerRound);
            await RoundAsync(Xml, RequestsPerRound);
        }
        var json = new Samples();
        var xml = new Samples();
        var baseline = new Samples();
        for (var i = 0; i < runs; i++)
        {
            baseline.Add(await RoundAsync(Raw, RequestsPerRound));
            json.Add(await RoundAsync(Json, RequestsPerRound));
            xml.Add(await RoundAsync(Xml, RequestsPerRound));
        }
        return
        [
            new ScenarioResult("rpc-search-read jsonrpc p50", json.Latencies, baseline.Latencies, "raw Npgsql p50",
                $"jsonrpc {json.Summary} | raw {baseline.Summary} | jsonrpc/raw rate {json.Rate / baseline.Rate:F2}"),
            new ScenarioResult("rpc-search-read xmlrpc p50", xml.Latencies, baseline.Latencies, "raw Npgsql p50",
                $"xmlrpc {xml.Summary} | raw {baseline.Summary} | xmlrpc/raw rate {xml.Rate / baseline.Rate:F2}"),
        ];
    }

    /// <summary>Runs <paramref name="count"/> calls with <see cref="Concurrency"/> workers; returns each call's latency and the wall
    /// time.</summary>
    private static async Task<(List<double> Latencies, double WallMs)> RoundAsync(Func<Task> call, int count)
    {
        var latencies = new ConcurrentBag<double>();
        var next = 0;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                var watch = Stopwatch.StartNew();
                await call();
                latencies.Add(watch.Elapsed.TotalMilliseconds);
            }
        }));
        return ([.. latencies], wall.Elapsed.TotalMilliseconds);
    }

    private sealed class Samples
    {
        private double _wallMs;
        public List<double> Latencies { get; } = [];
        public double Rate => Latencies.Count / (_wallMs / 1000);

        public void Add((List<double> Latencies, double WallMs) round)
        {
            Latencies.AddRange(round.Latencies);
            _wallMs += round.WallMs;
        }

        public string Summary
        {
            get
            {
                var sorted = Latencies.Order().ToArray();
                var p99 = sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))];
                return string.Create(CultureInfo.InvariantCulture,
                    $"{Rate:F0} req/s p50 {BenchRunner.Median(sorted):F2} ms p99 {p99:F2} ms");
            }
        }
    }
}
