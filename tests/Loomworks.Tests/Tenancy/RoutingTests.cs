using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

public sealed class RoutingTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Master = "master-of-routing";

    private static Dictionary<string, string> Config(string? dbfilter = null)
    {
        var config = new Dictionary<string, string> { ["loomworks_base_domain"] = "example.test", ["admin_passwd"] = Master };
        if (dbfilter is not null)
        {
            config["dbfilter"] = dbfilter;
        }
        return config;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> GetAsync(TenancyHost host,
        string path,
        string? hostHeader = null, string? tenantHeader = null, string? cookie = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (hostHeader is not null) request.Headers.Host = hostHeader;
        if (tenantHeader is not null) request.Headers.Add("X-Loomworks-Tenant", tenantHeader);
        if (cookie is not null) request.Headers.Add("Cookie", cookie);
        var response = await host.Client.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default, response);
    }

    private static TenantRequest Request(string subdomain) => new(subdomain, subdomain, "admin", "pw-" + subdomain);

    [Fact]
    public async Task Three_tenants_are_reached_by_header_subdomain_and_db_with_the_designed_precedence_and_states()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "route_three_mgmt", Config());
        var provisioner = host.Get<TenantProvisioner>();
        foreach (var name in new[] { "rt-alpha", "rt-beta", "rt-gamma" })
        {
            await provisioner.CreateAsync(Request(name), Ct);
        }

        var (status, body, _) = await GetAsync(host, "/web/tenant/info", hostHeader: "rt-alpha.example.test");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("rt-alpha", body.GetProperty("current_database").GetString());
        (status, body, _) = await GetAsync(host, "/web/tenant/info", hostHeader: "rt-alpha.example.test:8069", tenantHeader: "rt-beta");
        Assert.Equal("rt-beta", body.GetProperty("current_database").GetString());
        Assert.Equal("routed by header", body.GetProperty("routed").GetString());

        var router = host.Get<TenantRouter>();
        Assert.Equal("rt-gamma", (await router.RouteAsync(new RoutingRequest("127.0.0.1", null, "rt-gamma"), Ct)).Tenant!.DatabaseName);
        Assert.Equal("rt-beta", (await router.RouteAsync(new RoutingRequest("rt-beta.example.test", null, "rt-gamma"),
            Ct)).Tenant!.DatabaseName);
        // Not an exact suffix, a nested label and a reserved host are not subdomain routes.
        Assert.Equal(404, (await router.RouteAsync(new RoutingRequest("rt-alpha.example.test.evil", null, null), Ct)).StatusCode);
        Assert.Equal("rt-gamma", (await router.RouteAsync(new RoutingRequest("www.example.test", null, "rt-gamma"),
            Ct)).Tenant!.DatabaseName);
        Assert.Equal(404, (await router.RouteAsync(new RoutingRequest("a.rt-alpha.example.test", null, null), Ct)).StatusCode);

        (status, body, _) = await GetAsync(host, "/web/tenant/info", hostHeader: "nobody-here.example.test");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("nobody-here", body.GetProperty("message").GetString(), StringComparison.Ordinal);

        await host.Get<TenantLifecycle>().SuspendAsync("rt-beta", "test", Ct);
        await Eventually.HoldsAsync(async () => (await GetAsync(host, "/web/tenant/info",
            tenantHeader: "rt-beta")).Status != HttpStatusCode.OK,
            "the suspended tenant stops answering 200", TimeSpan.FromSeconds(1));
        (status, body, _) = await GetAsync(host, "/web/tenant/info", tenantHeader: "rt-beta");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("tenant_suspended", body.GetProperty("error").GetString());

        await postgres.ExecuteAsync("route_three_mgmt", "UPDATE loomworks_tenant SET state = 'provisioning' WHERE subdomain = 'rt-gamma'");
        host.Get<TenantCache>().Evict("rt-gamma", "rt-gamma");
        var (provisioning, _, response) = await GetAsync(host, "/web/tenant/info", tenantHeader: "rt-gamma");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, provisioning);
        Assert.NotNull(response.Headers.RetryAfter);

        using var html = new HttpRequestMessage(HttpMethod.Get, "/web/tenant/info");
        html.Headers.Add("X-Loomworks-Tenant", "rt-beta");
        html.Headers.Add("Accept", "text/html");
        var page = await host.Client.SendAsync(html, Ct);
        Assert.Contains("suspended", await page.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

        // Health stays tenant-less.
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/web/health", Ct)).StatusCode);
        await postgres.ExecuteAsync("route_three_mgmt", "UPDATE loomworks_tenant SET state = 'active' WHERE subdomain = 'rt-gamma'");
        foreach (var name in new[] { "rt-alpha", "rt-beta", "rt-gamma" })
        {
            await host.Get<TenantLifecycle>().DeleteAsync(name, force: true, "test", Ct);
        }
    }

    [Fact]
    public async Task Dbfilter_matches_whole_names_so_odoo_does_not_select_odoob()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "route_filter_mgmt", Config("^odoo"));
        await host.Get<TenantProvisioner>().CreateAsync(Request("odoob"), Ct);
        var router = host.Get<TenantRouter>();
        Assert.Equal(404, (await router.RouteAsync(new RoutingRequest("127.0.0.1", null, null), Ct)).StatusCode);
        Assert.Equal(404, (await router.RouteAsync(new RoutingRequest("127.0.0.1", null, "odoob"), Ct)).StatusCode);
        await host.Get<TenantProvisioner>().CreateAsync(Request("odoo"), Ct);
        Assert.Equal("odoo", (await router.RouteAsync(new RoutingRequest("127.0.0.1", null, null), Ct)).Tenant!.DatabaseName);

        await using var byHost = await TenancyHost.StartAsync(postgres, "route_filter_mgmt",
            new Dictionary<string, string> { ["dbfilter"] = "%d" });
        var hostRouter = byHost.Get<TenantRouter>();
        Assert.Equal("odoob", (await hostRouter.RouteAsync(new RoutingRequest("www.odoob.example.com", null, null),
            Ct)).Tenant!.DatabaseName);
        Assert.Equal(404, (await hostRouter.RouteAsync(new RoutingRequest("odo.example.com", null, null), Ct)).StatusCode);
        await host.Get<TenantLifecycle>().DeleteAsync("odoo", force: true, "test", Ct);
        await host.Get<TenantLifecycle>().DeleteAsync("odoob", force: true, "test", Ct);
    }

    [Fact]
    public async Task A_session_of_one_tenant_sent_to_another_is_refused_and_audited()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "route_cross_mgmt", Config());
        await host.Get<TenantProvisioner>().CreateAsync(Request("cross-a"), Ct);
        await host.Get<TenantProvisioner>().CreateAsync(Request("cross-b"), Ct);
        using var login = new HttpRequestMessage(HttpMethod.Post, "/web/tenant/login")
        {
            Content = JsonContent.Create(new { login = "admin", password = "pw-cross-a" }),
        };
        login.Headers.Add("X-Loomworks-Tenant", "cross-a");
        var loggedIn = await host.Client.SendAsync(login, Ct);
        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        var cookie = loggedIn.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        var (own, ownBody, _) = await GetAsync(host, "/web/tenant/info", tenantHeader: "cross-a", cookie: cookie);
        Assert.Equal(HttpStatusCode.OK, own);
        Assert.Equal("admin", ownBody.GetProperty("login").GetString());
        var (other, otherBody, _) = await GetAsync(host, "/web/tenant/info", tenantHeader: "cross-b", cookie: cookie);
        Assert.Equal(HttpStatusCode.Forbidden, other);
        Assert.Equal("cross_tenant", otherBody.GetProperty("error").GetString());
        Assert.Equal(1L, await postgres.ScalarAsync<long>("route_cross_mgmt",
            "SELECT count(*) FROM loomworks_audit_cross_tenant WHERE credential_database = 'cross-a' AND routed_database = 'cross-b' AND " +
            "refused"));
        var (forged, _, _) = await GetAsync(host, "/web/tenant/info", tenantHeader: "cross-a", cookie: "loomworks_tenant_session=forged");
        Assert.Equal(HttpStatusCode.Unauthorized, forged);
        await host.Get<TenantLifecycle>().DeleteAsync("cross-a", force: true, "test", Ct);
        await host.Get<TenantLifecycle>().DeleteAsync("cross-b", force: true, "test", Ct);
    }

    [Fact]
    public async Task Admin_api_creates_changes_and_deletes_tenants_and_refuses_bad_input_and_bad_passwords()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "route_api_mgmt", Config());
        var client = host.Client;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/openapi.json", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/tenants", Ct)).StatusCode);
        client.DefaultRequestHeaders.Authorization = TenancyHost.Basic("admin", Master);

        async Task<(HttpStatusCode, string)> Send(HttpMethod method, string path, string? json = null)
        {
            using var request = new HttpRequestMessage(method, path);
            if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
            var response = await client.SendAsync(request, Ct);
            return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
        }

        var (created, _) = await Send(HttpMethod.Post, "/api/v1/tenants",
            """{"name":"Api","subdomain":"api-one","admin_login":"admin","admin_password":"pw","max_users":3}""");
        Assert.Equal(HttpStatusCode.Created, created);
        var bad = new (string Json, HttpStatusCode Status, string Problem)[]
        {
            ("""{"name":"x","subdomain":"api-one","admin_login":"a","admin_password":"p"}""", HttpStatusCode.Conflict, "already taken"),
            ("""{"name":"x","subdomain":"ADMIN'--","admin_login":"a","admin_password":"p"}""", HttpStatusCode.BadRequest, "must match"),
            ("""{"name":"x","subdomain":"api-neg","admin_login":"a","admin_password":"p","max_users":-1}""", HttpStatusCode.BadRequest,
                "max_users must not be negative"),
            ("""{"name":"x","subdomain":"api-unk","admin_login":"a","admin_password":"p","state":"bogus"}""", HttpStatusCode.BadRequest,
                "state"),
            ("""{"name":""", HttpStatusCode.BadRequest, "not acceptable JSON"),
            ("{\"name\":\"" + new string('x', 70_000) + "\"}", HttpStatusCode.RequestEntityTooLarge, "at most"),
            ("""{"name":"x","subdomain":"api-hash","admin_login":"a","admin_password_hash":"$pbkdf2-sha512$1$AAAA$BBBB"}""",
                HttpStatusCode.BadRequest, "admin_password_hash has 1 rounds"),
            ("""{"name":"x","subdomain":"api-hash","admin_login":"a","admin_password_hash":"plain"}""", HttpStatusCode.BadRequest,
                "admin_password_hash must be a passlib pbkdf2-sha512 hash"),
            ("""{"name":"x","subdomain":"api-hash","admin_login":"a","admin_password":"p","admin_password_hash":"x"}""",
                HttpStatusCode.BadRequest, "not both"),
        };
        foreach (var (json, status, problem) in bad)
        {
            var (got, text) = await Send(HttpMethod.Post, "/api/v1/tenants", json);
            Assert.Equal(status, got);
            Assert.Contains(problem, text, StringComparison.Ordinal);
        }
        var (patched, patchText) = await Send(HttpMethod.Patch, "/api/v1/tenants/api-one", """{"max_users":7,"tier":"gold"}""");
        Assert.Equal(HttpStatusCode.OK, patched);
        Assert.Contains("\"max_users\":7", patchText, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Patch, "/api/v1/tenants/api-one",
            """{"max_storage_gb":-3}""")).Item1);
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Post, "/api/v1/tenants/api-one/suspend")).Item1);
        Assert.Equal(HttpStatusCode.Conflict, (await Send(HttpMethod.Delete, "/api/v1/tenants/api-one")).Item1);
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Post, "/api/v1/tenants/api-one/archive")).Item1);
        Assert.Equal(HttpStatusCode.NoContent, (await Send(HttpMethod.Delete, "/api/v1/tenants/api-one")).Item1);
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "/api/v1/tenants/api-one")).Item1);
        Assert.Empty(await host.Get<TenantStore>().ListAsync(Ct));

        client.DefaultRequestHeaders.Authorization = TenancyHost.Basic("admin", "wrong");
        for (var i = 0; i < MasterPassword.MaxFailures; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/tenants", Ct)).StatusCode);
        }
        client.DefaultRequestHeaders.Authorization = TenancyHost.Basic("admin", Master);
        var limited = await client.GetAsync("/api/v1/tenants", Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.NotNull(limited.Headers.RetryAfter);
    }

    [Fact]
    public async Task Without_admin_passwd_the_admin_api_says_it_is_disabled()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "route_noadmin_mgmt");
        host.Client.DefaultRequestHeaders.Authorization = TenancyHost.Basic("admin", "admin");
        var response = await host.Client.GetAsync("/api/v1/tenants", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("disabled until admin_passwd is set", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }
}
