using System.Net;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

public sealed class TwoInstanceTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpStatusCode> StatusAsync(TenancyHost host, string tenant)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/web/tenant/info");
        request.Headers.Add("X-Loomworks-Tenant", tenant);
        return (await host.Client.SendAsync(request, Ct)).StatusCode;
    }

    [Fact]
    public async Task A_suspend_through_one_instance_is_enforced_by_the_other_within_a_second_even_after_its_listener_is_killed()
    {
        const string mgmt = "two_inst_mgmt";
        await using var one = await TenancyHost.StartAsync(postgres, mgmt);
        await using var two = await TenancyHost.StartAsync(postgres, mgmt);
        await one.Get<TenantProvisioner>().CreateAsync(new TenantRequest("Two", "two-inst", "admin", "pw"), Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.OK,
            "the second instance serves the tenant",
            TimeSpan.FromSeconds(5));
        var lookups = two.Get<TenantCache>().DatabaseLookups;
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(two, "two-inst"));
        Assert.Equal(lookups, two.Get<TenantCache>().DatabaseLookups); // served from the cache

        await one.Get<TenantLifecycle>().SuspendAsync("two-inst", "test", Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.Forbidden,
            "the suspension made by the first instance reaches the second", TimeSpan.FromSeconds(1));

        var listener = two.Get<TenantChangeListener>();
        var connects = listener.Connects;
        await postgres.ExecuteAsync("postgres",
            $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{listener.ApplicationName}'");
        await Eventually.HoldsAsync(() => Task.FromResult(listener.Connects > connects), "the listener reconnects",
            TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(two, "two-inst"));
        await one.Get<TenantLifecycle>().ActivateAsync("two-inst", "test", Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.OK,
            "the activation reaches the second instance", TimeSpan.FromSeconds(1));
        await one.Get<TenantLifecycle>().DeleteAsync("two-inst", force: true, "test", Ct);
    }
}
