using Loomworks.Security;
using System.Diagnostics;
using System.Globalization;
using Loomworks.Tenancy.Routing;

namespace Loomworks.Bench;

/// <summary>
/// Provisions <see cref="Tenants"/> tenants in one durable cluster, each beside a bare <c>CREATE DATABASE … TEMPLATE</c>,
/// then routes one request to every tenant through the cache and the data source registry. Reports the per-tenant
/// medians in the table; total time, the management database's size and the process's resident memory before and
/// after the routing pass go in the note. One pass per invocation: --runs does not apply, the samples are the tenants.
/// </summary>
public sealed class TenantScaleScenario : IScenario
{
    public const int DefaultTenants = 1_000;

    public string Name => "tenant-scale";
    public string Description =>
        $"provision --tenants N (default {DefaultTenants:N0}) tenants vs N bare CREATE DATABASE … TEMPLATE; size, memory";

    /// <summary>Set by --tenants.</summary>
    public int Tenants { get; set; } = DefaultTenants;

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        var ours = new List<double>(Tenants);
        var baseline = new List<double>(Tenants);
        await using var bench = await TenancyBench.StartAsync(cancellationToken);
        await using var server = await bench.OpenServerConnectionAsync(cancellationToken);
        var managementBefore = await bench.DatabaseSizeAsync(TenancyBench.ManagementName, cancellationToken);
        var subdomains = Enumerable.Range(0, Tenants).Select(i => string.Create(CultureInfo.InvariantCulture, $"scale{i:D5}")).ToArray();
        // One hash for all: a thousand 600,000-round PBKDF2s would measure the hash, not the platform.
        var passwordHash = Passwords.Hash("bench-password");
        var progress = Stopwatch.StartNew();
        for (var i = 0; i < Tenants; i++)
        {
            ours.Add(await BenchRunner.TimeAsync(() => bench.Provisioner.CreateAsync(TenancyBench.HashedRequest(subdomains[i],
                passwordHash), cancellationToken)));
            var bare = string.Create(CultureInfo.InvariantCulture, $"bare{i:D5}");
            baseline.Add(await TenancyBench.BareCreateAsync(server, bare, cancellationToken));
            // Untimed: the baseline's copies are not needed afterwards, and N of them would double the disk used.
            await TenancyBench.DropAsync(server, bare, cancellationToken);
            if ((i + 1) % 100 == 0)
            {
                await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"  {i + 1} tenants after {progress.Elapsed.TotalSeconds:F0} s"));
            }
        }
        var managementAfter = await bench.DatabaseSizeAsync(TenancyBench.ManagementName, cancellationToken);

        GC.Collect();
        var rssBefore = TenancyBench.ResidentBytes();
        var router = bench.Router(out var cache);
        var routing = await BenchRunner.TimeAsync(async () =>
        {
            foreach (var subdomain in subdomains)
            {
                var outcome = await router.RouteAsync(new RoutingRequest($"{subdomain}.{TenancyBench.BaseDomain}", null, null),
                    cancellationToken);
                if (!outcome.IsRouted)
                {
                    throw new InvalidOperationException($"tenant {subdomain} not routed: {outcome.Message}");
                }
                // The request itself: one query in the tenant's database through the registry, as a handler would.
                await using var command = bench.DataSources.For(outcome.Tenant!.DatabaseName).CreateCommand(
                    "SELECT count(*) FROM res_users WHERE id = 2 AND password IS NOT NULL");
                if ((long)(await command.ExecuteScalarAsync(cancellationToken))! != 1)
                {
                    throw new InvalidOperationException($"tenant {subdomain} has no administrator");
                }
            }
        });
        var rssAfter = TenancyBench.ResidentBytes();
        GC.Collect();
        var rssAfterGc = TenancyBench.ResidentBytes();

        var note = string.Create(CultureInfo.InvariantCulture,
            $"tenant-scale: {Tenants} tenants; provisioning total {ours.Sum() / 1000:F1} s (bare creates {baseline.Sum() / 1000:F1} s), " +
            $"per tenant median {BenchRunner.Median(ours):F1} ms p90 {TenancyBench.Percentile(ours, 0.9):F1} ms " +
            $"(bare median {BenchRunner.Median(baseline):F1} ms p90 {TenancyBench.Percentile(baseline, 0.9):F1} ms); " +
            $"{TenancyBench.ManagementName} size {TenancyBench.Mib(managementBefore)} before, {TenancyBench.Mib(managementAfter)} after; " +
            $"VmRSS {TenancyBench.Mib(rssBefore)} before routing, {TenancyBench.Mib(rssAfter)} after routing one request to each tenant " +
            $"({TenancyBench.Mib(rssAfterGc)} after a GC) in {routing / 1000:F1} s; " +
            $"registry: {bench.DataSources.Count} pools open, {bench.DataSources.Evictions} evictions, {bench.DataSources.Held} " +
            $"connections held; " +
            $"cache lookups that reached the database: {cache.DatabaseLookups}");
        return [new ScenarioResult(Name, ours, baseline, "bare CREATE DATABASE … TEMPLATE", note)];
    }

    /// <summary>Keeps a runaway --tenants from filling the disk: each tenant database is a full copy of the template.</summary>
    public static bool IsAcceptable(int tenants) => tenants is > 0 and <= 10_000;
}
