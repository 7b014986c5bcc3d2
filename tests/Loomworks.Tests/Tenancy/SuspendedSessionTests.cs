using System.Net;
using System.Text;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

/// <summary>
/// A suspended tenant's sessions stop at once: the instance that suspends forgets its cached state before it answers,
/// and a web session is checked against the management database, not a cache that has not heard of the change yet.
/// </summary>
public sealed class SuspendedSessionTests(PostgresFixture postgres)
{
    private const string Master = "master-of-suspends";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(TenancyHost Host, string Cookie)> StartWithSessionAsync(PostgresFixture postgres, string management,
        string subdomain)
    {
        var host = await TenancyHost.StartAsync(postgres, management, new Dictionary<string, string> { ["admin_passwd"] = Master });
        await host.Get<TenantProvisioner>().CreateAsync(new TenantRequest(subdomain, subdomain, "admin", "pw-" + subdomain), Ct);
        using var login = await PostAsync(host, "/web/session/authenticate",
            $$$"""
            {"jsonrpc": "2.0", "method": "call",
             "params": {"db": "{{{subdomain}}}", "login": "admin", "password": "pw-{{{subdomain}}}"}}
            """);
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        var cookie = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("session_id=", StringComparison.Ordinal)).Split(';')[0];
        // The session works, and the tenant is in the cache as active.
        using var check = await SessionInfoAsync(host, cookie);
        Assert.Equal(HttpStatusCode.OK, check.StatusCode);
        Assert.Contains("\"result\"", await check.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        return (host, cookie);
    }

    private static async Task<HttpResponseMessage> PostAsync(TenancyHost host, string path, string body, string? cookie = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post,
            path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", cookie);
        }
        return await host.Client.SendAsync(request, Ct);
    }

    private static Task<HttpResponseMessage> SessionInfoAsync(TenancyHost host, string cookie) =>
        PostAsync(host, "/web/session/get_session_info", """{"jsonrpc": "2.0", "method": "call", "params": {}}""", cookie);

    [Fact]
    public async Task After_the_admin_API_answers_a_suspend_the_next_request_of_that_tenants_session_is_refused()
    {
        var (host, cookie) = await StartWithSessionAsync(postgres, "susp_api_mgmt", "susp-api");
        await using var _ = host;
        // No NOTIFY reaches this instance any more: only the suspend's own eviction can change what it serves.
        await host.Get<TenantChangeListener>().StopAsync(Ct);

        using (var suspend = new HttpRequestMessage(HttpMethod.Post, "/api/v1/tenants/susp-api/suspend"))
        {
            suspend.Headers.Authorization = TenancyHost.Basic("admin", Master);
            using var answer = await host.Client.SendAsync(suspend, Ct);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        }
        using var refused = await SessionInfoAsync(host, cookie);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("suspended", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        using var page = new HttpRequestMessage(HttpMethod.Get, "/web/tenant/info");
        page.Headers.Add("X-Loomworks-Tenant", "susp-api");
        using var info = await host.Client.SendAsync(page, Ct);
        Assert.Equal(HttpStatusCode.Forbidden, info.StatusCode);
    }

    [Fact]
    public async Task A_session_is_refused_as_soon_as_the_management_database_says_suspended_before_any_cache_hears_of_it()
    {
        var (host, cookie) = await StartWithSessionAsync(postgres, "susp_other_mgmt", "susp-other");
        await using var _ = host;
        // Another instance's suspend whose NOTIFY has not arrived here yet: the row changes, this cache still says active.
        await postgres.ExecuteAsync("susp_other_mgmt", "UPDATE loomworks_tenant SET state = 'suspended' WHERE subdomain = 'susp-other'");
        Assert.Equal(TenantStates.Active, (await host.Get<TenantCache>().ByDatabaseAsync("susp-other", Ct))!.State);

        using var refused = await SessionInfoAsync(host, cookie);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        using var call = await PostAsync(host, "/web/dataset/call_kw",
            """
            {"jsonrpc": "2.0", "method": "call",
             "params": {"model": "res.partner", "method": "search_count", "args": [[]], "kwargs": {}}}
            """,
            cookie);
        Assert.Equal(HttpStatusCode.Forbidden, call.StatusCode);
    }
}
