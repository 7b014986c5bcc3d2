using System.Diagnostics;
using System.Globalization;
using Loomworks.Security;

namespace Loomworks.Bench;

/// <summary>
/// Provisioning one tenant (template already prepared) beside a bare <c>CREATE DATABASE … TEMPLATE</c> of the same
/// template, alternately in one durable cluster. Target: median under 300 ms and within 2× of the bare create.
/// The first row sends the administrator's password hashed (as a control plane would); the second sends it in
/// clear, so provisioning also runs the 600,000-round PBKDF2 — shown beside that hash computed alone.
/// </summary>
public sealed class TenantProvisionScenario : IScenario
{
    private const double TargetMs = 300;
    private const double TargetRatio = 2;

    public string Name => "tenant-provision";
    public string Description => "TenantProvisioner.CreateAsync vs a bare CREATE DATABASE … TEMPLATE of the same template";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        var ours = new List<double>();
        var baseline = new List<double>();
        var plain = new List<double>();
        var hashAlone = new List<double>();
        await using var bench = await TenancyBench.StartAsync(cancellationToken);
        await using var server = await bench.OpenServerConnectionAsync(cancellationToken);
        var passwordHash = Passwords.Hash("bench-password");
        // One untimed round of each: first-use costs (pools, JIT, PBKDF2 code paths) are not steady state.
        await bench.Provisioner.CreateAsync(TenancyBench.HashedRequest("warmup", passwordHash), cancellationToken);
        await bench.Provisioner.CreateAsync(TenancyBench.Request("warmup-plain"), cancellationToken);
        await TenancyBench.BareCreateAsync(server, "bare_warmup", cancellationToken);
        for (var i = 0; i < runs; i++)
        {
            var subdomain = string.Create(CultureInfo.InvariantCulture, $"prov{i:D4}");
            ours.Add(await BenchRunner.TimeAsync(() => bench.Provisioner.CreateAsync(TenancyBench.HashedRequest(subdomain, passwordHash),
                cancellationToken)));
            baseline.Add(await TenancyBench.BareCreateAsync(server, string.Create(CultureInfo.InvariantCulture, $"bare{i:D4}"),
                cancellationToken));
            plain.Add(await BenchRunner.TimeAsync(() => bench.Provisioner.CreateAsync(TenancyBench.Request(subdomain + "-plain"),
                cancellationToken)));
            var hashing = Stopwatch.StartNew();
            _ = Passwords.Hash("bench-password-" + subdomain);
            hashAlone.Add(hashing.Elapsed.TotalMilliseconds);
        }
        var median = BenchRunner.Median(ours);
        var ratio = median / BenchRunner.Median(baseline);
        var note = string.Create(CultureInfo.InvariantCulture,
            $"tenant-provision (password hash supplied): ours p90 {TenancyBench.Percentile(ours, 0.9):F1} ms, bare p90 " +
            $"{TenancyBench.Percentile(baseline, 0.9):F1} ms; " +
            $"ratio {ratio:F2}; target median < {TargetMs:F0} ms {(median < TargetMs ? "met" : "NOT met")}, " +
            $"within {TargetRatio:F0}x of bare {(ratio <= TargetRatio ? "met" : "NOT met")}");
        var plainNote = string.Create(CultureInfo.InvariantCulture,
            $"tenant-provision-plain: the password hashed during provisioning, beside the database steps; " +
            $"median {BenchRunner.Median(plain):F1} ms vs the hash alone {BenchRunner.Median(hashAlone):F1} ms");
        return
        [
            new ScenarioResult(Name, ours, baseline, "bare CREATE DATABASE … TEMPLATE", note),
            new ScenarioResult("tenant-provision-plain", plain, hashAlone, "PBKDF2-SHA512 600,000 rounds alone", plainNote),
        ];
    }
}
