using System.Diagnostics;
using System.Globalization;
using Loomworks.Tenancy.Routing;

namespace Loomworks.Bench;

/// <summary>
/// A cached routing lookup (TenantRouter.RouteAsync by header and by subdomain) beside the uncached path: a direct
/// indexed SELECT on loomworks_tenant through Npgsql. Both are reported per 1,000 calls, so the milliseconds in the
/// table read as microseconds per call.
/// </summary>
public sealed class TenantRoutingScenario : IScenario
{
    private const int Tenants = 10;
    private const int CachedCalls = 50_000;
    private const int SelectCalls = 2_000;
    private const string Columns = """
        id, name, subdomain, database_name, state, tier, max_users, max_storage_gb, max_ai_operations_daily,
        subscription_expires, database_server, created_at, updated_at
        """;

    public string Name => "tenant-routing";
    public string Description => "cached TenantRouter lookup (header, subdomain) vs an indexed SELECT on loomworks_tenant, per 1,000 calls";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var bench = await TenancyBench.StartAsync(cancellationToken);
        var subdomains = Enumerable.Range(0, Tenants).Select(i => string.Create(CultureInfo.InvariantCulture, $"route{i:D2}")).ToArray();
        foreach (var name in subdomains)
        {
            await bench.Provisioner.CreateAsync(TenancyBench.Request(name), cancellationToken);
        }
        var router = bench.Router(out var cache);
        RoutingRequest[] byHeader = [.. subdomains.Select(s => new RoutingRequest("localhost:8069", s, null))];
        RoutingRequest[] bySubdomain = [.. subdomains.Select(s => new RoutingRequest($"{s}.{TenancyBench.BaseDomain}:8069", null, null))];

        // Warm: fill the cache, JIT both paths and the SELECT's pool before anything is timed.
        await RouteAllAsync(router, byHeader, byHeader.Length * 10, "header", cancellationToken);
        await RouteAllAsync(router, bySubdomain, bySubdomain.Length * 10, "subdomain", cancellationToken);
        await SelectAllAsync(bench, subdomains, SelectCalls / 10, cancellationToken);
        var lookupsBefore = cache.DatabaseLookups;

        var header = new List<double>();
        var subdomain = new List<double>();
        var select = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            header.Add(await RouteAllAsync(router, byHeader, CachedCalls, "header", cancellationToken));
            subdomain.Add(await RouteAllAsync(router, bySubdomain, CachedCalls, "subdomain", cancellationToken));
            select.Add(await SelectAllAsync(bench, subdomains, SelectCalls, cancellationToken));
        }
        var missed = cache.DatabaseLookups - lookupsBefore;
        const string Baseline = "indexed SELECT on loomworks_tenant (Npgsql), per 1,000";
        string Note(string method, List<double> ours) => string.Create(CultureInfo.InvariantCulture,
            $"tenant-routing {method}: {BenchRunner.Median(ours):F3} µs per cached call " +
            $"vs {BenchRunner.Median(select):F1} µs per SELECT " +
            $"(the SELECT costs {BenchRunner.Median(select) / BenchRunner.Median(ours):N0}x a cached call; " +
            $"{CachedCalls:N0} routed and {SelectCalls:N0} SELECTs per run over {Tenants} tenants; " +
            $"cache misses while timed: {missed})");
        return
        [
            new ScenarioResult("tenant-routing (header, per 1,000)", header, select, Baseline, Note("by header", header)),
            new ScenarioResult("tenant-routing (subdomain, per 1,000)", subdomain, select, Baseline, Note("by subdomain", subdomain)),
        ];
    }

    /// <summary>Routes <paramref name="calls"/> requests round-robin; returns milliseconds per 1,000 calls.</summary>
    private static async Task<double> RouteAllAsync(TenantRouter router, RoutingRequest[] requests, int calls, string method,
        CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < calls; i++)
        {
            var outcome = await router.RouteAsync(requests[i % requests.Length], ct);
            if (!outcome.IsRouted)
            {
                throw new InvalidOperationException($"routing by {method} failed: {outcome.Message}");
            }
        }
        return watch.Elapsed.TotalMilliseconds * 1000 / calls;
    }

    /// <summary>What the cache saves: the tenant row read by its unique subdomain on every call; ms per 1,000 calls.</summary>
    private static async Task<double> SelectAllAsync(TenancyBench bench, string[] subdomains, int calls, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < calls; i++)
        {
            await using var command = bench.Management.DataSource.CreateCommand(
                $"SELECT {Columns} FROM loomworks_tenant WHERE subdomain = $1");
            command.Parameters.AddWithValue(subdomains[i % subdomains.Length]);
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct) || reader.GetString(4) != "active")
            {
                throw new InvalidOperationException($"tenant {subdomains[i % subdomains.Length]} not found by SELECT");
            }
        }
        return watch.Elapsed.TotalMilliseconds * 1000 / calls;
    }
}
