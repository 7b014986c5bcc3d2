using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// JSON-RPC search_read of 80 partners with 60 clients spread over N busy tenants (N = 5, 20, 60, 200) on one server
/// with db_maxconn 64, plus 200 clients over 60 tenants: requests/s, p50, p99, new PostgreSQL sessions per second in
/// the measured window (pg_stat_database.sessions) and the most client connections PostgreSQL had (pg_stat_activity,
/// sampled). All cases run side by side in each run; the table gives the median of the runs and their spread.
/// </summary>
public sealed class ManyTenantsScenario : IScenario
{
    private const int MaxConnections = 64;
    private const int Tenants = 200;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(6);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(6);
    private static readonly TimeSpan MaxSettle = TimeSpan.FromSeconds(20);
    private static readonly (int Tenants, int Clients)[] Cases = [(5, 60), (20, 60), (60, 60), (200, 60), (60, 200)];

    public string Name => "many-tenants";
    public string Description => "JSON-RPC search_read, 60 clients over 5/20/60/200 busy tenants (db_maxconn 64)";

    private sealed record Measure(double Rate, double P50, double P99, double SessionsPerSecond, int MaxConnections, int Errors);

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await ThrowawayCluster.StartAsync(dir => new EmbeddedClusterOptions
        {
            DataDir = dir, Port = 55620, MaxConnections = 400, Durable = false,
        }, cancellationToken);
        return await MeasureAsync(cluster.Endpoint, runs, cancellationToken);
    }

    private static async Task<IReadOnlyList<ScenarioResult>> MeasureAsync(PostgresEndpoint endpoint, int runs, CancellationToken ct)
    {
        var databases = Enumerable.Range(0, Tenants).Select(i => $"bench_mt_{i:D3}").ToArray();
        // The admin password is hashed with few rounds: each tenant's first call checks it once, and 200 full checks
        // would only lengthen the warm-up; after it no call runs PBKDF2.
        await using var server = await BenchRpcServer.StartAsync(endpoint, 55621, databases, async (tenant, ct) =>
        {
            await using var seed = new NpgsqlCommand("""
                INSERT INTO res_partner (name, complete_name, email, phone, active, is_company)
                SELECT 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.test', '+32 2 ' || g, true, false
                FROM generate_series(1, 500) g
                """, tenant);
            await seed.ExecuteNonQueryAsync(ct);
        }, ct, cloneFirst: true, passwordRounds: 1000, maxConnections: MaxConnections);
        await using var monitor = new NpgsqlConnection(endpoint.ConnectionString("postgres", "loomworks-bench") + ";Pooling=false");
        await monitor.OpenAsync(ct);

        var results = Cases.ToDictionary(c => c, _ => new List<Measure>());
        var connectRates = new List<double>();
        for (var run = 0; run < runs; run++)
        {
            foreach (var (tenants, clients) in Cases)
            {
                results[(tenants, clients)].Add(await CaseAsync(server.Http, monitor, databases[..tenants], clients, ct));
            }
            connectRates.Add(await ConnectRateAsync(endpoint, databases, ct));
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"many-tenants: median of {runs} run(s) [min–max], db_maxconn {MaxConnections}, " +
            $"{WarmUp.TotalSeconds:0} s warm-up and up to " +
            $"{MaxSettle.TotalSeconds:0} s more until a second passes without a new session, " +
            $"{Window.TotalSeconds:0} s measured"));
        Console.WriteLine("| tenants | clients | req/s | p50 (ms) | p99 (ms) | new sessions/s | max PG connections | " +
            "req/s vs N=5 | p99 vs N=5 | errors |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        var reference = results[Cases[0]];
        var rows = new List<ScenarioResult>();
        foreach (var key in Cases)
        {
            var m = results[key];
            string Cell(Func<Measure, double> f, string format) =>
                string.Create(CultureInfo.InvariantCulture,
                    $"{BenchRunner.Median(m.Select(f).ToList()).ToString(format, CultureInfo.InvariantCulture)} " +
                    $"[{m.Min(f).ToString(format, CultureInfo.InvariantCulture)}–" +
                    $"{m.Max(f).ToString(format, CultureInfo.InvariantCulture)}]");
            var rate = BenchRunner.Median(m.Select(x => x.Rate).ToList());
            var p99 = BenchRunner.Median(m.Select(x => x.P99).ToList());
            var refRate = BenchRunner.Median(reference.Select(x => x.Rate).ToList());
            var refP99 = BenchRunner.Median(reference.Select(x => x.P99).ToList());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {key.Tenants} | {key.Clients} | {Cell(x => x.Rate, "F0")} | {Cell(x => x.P50, "F1")} | {Cell(x => x.P99, "F1")} | " +
                $"{Cell(x => x.SessionsPerSecond, "F1")} | {m.Max(x => x.MaxConnections)} | {rate / refRate:F2} | {p99 / refP99:F2} | " +
                $"{m.Sum(x => x.Errors)} |"));
            rows.Add(new ScenarioResult($"many-tenants N={key.Tenants} c={key.Clients} p50", m.Select(x => x.P50).ToList(),
                reference.Select(x => x.P50).ToList(), "N=5 c=60 p50",
                string.Create(CultureInfo.InvariantCulture,
                    $"{rate:F0} req/s ({rate / refRate:F2} of N=5), p99 {p99:F1} ms, " +
                    $"{BenchRunner.Median(m.Select(x => x.SessionsPerSecond).ToList()):F1} new sessions/s, " +
                    $"max {m.Max(x => x.MaxConnections)} PostgreSQL connections")));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"PostgreSQL alone accepts {BenchRunner.Median(connectRates):F0} [{connectRates.Min():F0}–{connectRates.Max():F0}] new " +
            $"connections/s here ({ConnectClients} clients opening and closing unpooled connections): the ceiling of any case " +
            $"that needs a new session per request."));
        Console.WriteLine();
        return rows;
    }

    /// <summary>
    /// One case: <paramref name="clients"/> callers, client c calling tenant c mod N when there are at least as many
    /// clients as tenants, else going round its share of them, so every tenant stays busy.
    /// </summary>
    private static async Task<Measure> CaseAsync(HttpClient http, NpgsqlConnection monitor, string[] tenants, int clients,
        CancellationToken ct)
    {
        var bodies = tenants.Select(db => Encoding.UTF8.GetBytes(
            "{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"id\":1,\"params\":{\"service\":\"object\",\"method\":\"execute_kw\",\"args\":" +
            $"[\"{db}\",2,\"admin\",\"res.partner\",\"search_read\",[[[\"email\",\"!=\",false]]]," +
            "{\"fields\":[\"name\",\"email\",\"phone\"],\"limit\":80}]}}")).ToArray();
        var latencies = new ConcurrentBag<double>();
        var measuring = 0;
        var errors = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);

        async Task ClientAsync(int client)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var tenant = (client + i * clients) % tenants.Length;
                var watch = Stopwatch.StartNew();
                try
                {
                    using var content = new ByteArrayContent(bodies[tenant]);
                    content.Headers.ContentType = new("application/json");
                    using var response = await http.PostAsync("/jsonrpc", content, CancellationToken.None);
                    var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
                    if (!text.Contains("\"result\"", StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException(text.Length > 300 ? text[..300] : text);
                    }
                    if (Volatile.Read(ref measuring) == 1)
                    {
                        latencies.Add(watch.Elapsed.TotalMilliseconds);
                    }
                }
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException)
                {
                    if (Interlocked.Increment(ref errors) == 1)
                    {
                        await Console.Error.WriteLineAsync($"many-tenants: first error ({tenants.Length} tenants): {e.Message}");
                    }
                }
            }
        }

        var callers = Enumerable.Range(0, clients).Select(c => Task.Run(() => ClientAsync(c), CancellationToken.None)).ToArray();
        await Task.Delay(WarmUp, ct);
        // Steady state: connections moved from the previous case's databases first (a second without a new session).
        var settle = Stopwatch.StartNew();
        for (var sessions = await SessionsAsync(monitor, ct); settle.Elapsed < MaxSettle;)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
            var now = await SessionsAsync(monitor, ct);
            if (now == sessions)
            {
                break;
            }
            sessions = now;
        }
        var sessionsBefore = await SessionsAsync(monitor, ct);
        var started = Stopwatch.StartNew();
        Volatile.Write(ref measuring, 1);
        var errorsBefore = Volatile.Read(ref errors);
        var maxConnections = 0;
        while (started.Elapsed < Window)
        {
            maxConnections = Math.Max(maxConnections, await ConnectionsAsync(monitor, ct));
        }
        Volatile.Write(ref measuring, 0);
        var elapsed = started.Elapsed.TotalSeconds;
        var sessionsAfter = await SessionsAsync(monitor, ct);
        var measuredErrors = Volatile.Read(ref errors) - errorsBefore;
        await stop.CancelAsync();
        await Task.WhenAll(callers);

        var sorted = latencies.Order().ToArray();
        return new Measure(sorted.Length / elapsed, BenchRunner.Median(sorted), TenancyBench.Percentile(sorted, 0.99),
            (sessionsAfter - sessionsBefore) / elapsed, maxConnections, measuredErrors);
    }

    private const int ConnectClients = 20;

    /// <summary>The baseline for churn: new connections per second PostgreSQL itself accepts, opened and closed at once.</summary>
    private static async Task<double> ConnectRateAsync(PostgresEndpoint endpoint, string[] databases, CancellationToken ct)
    {
        var opened = 0;
        var watch = Stopwatch.StartNew();
        var window = TimeSpan.FromSeconds(3);
        await Task.WhenAll(Enumerable.Range(0, ConnectClients).Select(client => Task.Run(async () =>
        {
            for (var i = 0; watch.Elapsed < window; i++)
            {
                var database = databases[(client + i * ConnectClients) % databases.Length];
                await using var connection = new NpgsqlConnection(endpoint.ConnectionString(database, "loomworks-bench")
                    + ";Pooling=false");
                await connection.OpenAsync(ct);
                Interlocked.Increment(ref opened);
            }
        }, ct)));
        return opened / watch.Elapsed.TotalSeconds;
    }

    /// <summary>Sessions ever started in the cluster; the monitor's own started before the first reading.</summary>
    private static async Task<long> SessionsAsync(NpgsqlConnection monitor, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT sum(sessions)::bigint FROM pg_stat_database", monitor);
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Client connections open now, the monitor's own left out: every other one is the server's.</summary>
    private static async Task<int> ConnectionsAsync(NpgsqlConnection monitor, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()", monitor);
        return (int)(await command.ExecuteScalarAsync(ct))!;
    }
}
