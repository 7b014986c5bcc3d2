using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Loomworks.Rpc;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

/// <summary>
/// The tenant header is believed only from loomworks_trusted_proxies: anyone else's is ignored (the request is routed
/// by its host) and audited, and even a trusted one never reaches a database dbfilter refuses.
/// </summary>
public sealed class TenantHeaderTrustTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(HttpStatusCode Status, JsonElement Body)> InfoAsync(TenancyHost host, string? hostHeader, string tenant,
        string? forwardedFor = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/web/tenant/info");
        if (hostHeader is not null)
        {
            request.Headers.Host = hostHeader;
        }
        request.Headers.Add("X-Loomworks-Tenant", tenant);
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }
        using var response = await host.Client.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default);
    }

    [Fact]
    public async Task An_untrusted_clients_tenant_header_is_ignored_on_pages_and_RPC_and_audited_once_a_minute()
    {
        const string management = "hdr_trust_mgmt";
        await using var host = await TenancyHost.StartAsync(postgres, management, new Dictionary<string, string>
        {
            ["loomworks_base_domain"] = "trust.test",
            ["proxy_mode"] = "True",
        });
        var provisioner = host.Get<TenantProvisioner>();
        await provisioner.CreateAsync(new TenantRequest("ht-alpha", "ht-alpha", "admin", "pw-alpha"), Ct);
        await provisioner.CreateAsync(new TenantRequest("ht-beta", "ht-beta", "admin", "pw-beta"), Ct);
        const string outsider = "203.0.113.77";

        // From the trusted local address the header wins over the host, as internal services use it.
        var (status, body) = await InfoAsync(host, "ht-alpha.trust.test", "ht-beta");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ht-beta", body.GetProperty("current_database").GetString());

        // From an outside client (X-Forwarded-For of the trusted proxy) it is ignored: the host decides.
        (status, body) = await InfoAsync(host, "ht-alpha.trust.test", "ht-beta", outsider);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ht-alpha", body.GetProperty("current_database").GetString());
        Assert.Equal("routed by subdomain", body.GetProperty("routed").GetString());
        (status, _) = await InfoAsync(host, "127.0.0.1", "ht-beta", outsider);
        Assert.Equal(HttpStatusCode.NotFound, status);

        // RPC too: the call's db decides, the ignored header cannot make it a cross-tenant refusal or pick another tenant.
        using var rpc = new HttpRequestMessage(HttpMethod.Post, "/xmlrpc/2/common")
        {
            Content = new ByteArrayContent(XmlRpcCodec.WriteRequest("authenticate",
                ["ht-alpha", "admin", "pw-alpha", new Dictionary<string, object?>()])),
        };
        rpc.Content.Headers.ContentType = new MediaTypeHeaderValue("text/xml");
        rpc.Headers.Add("X-Loomworks-Tenant", "ht-beta");
        rpc.Headers.Add("X-Forwarded-For", outsider);
        using var answer = await host.Client.SendAsync(rpc, Ct);
        var (isFault, uid) = XmlRpcCodec.ReadResponse(await answer.Content.ReadAsByteArrayAsync(Ct));
        Assert.False(isFault, uid?.ToString());
        Assert.Equal(2L, uid);

        // Written down once for this client within the minute, naming what it asked for and from where.
        var where = $"WHERE credential_kind = '{CrossTenantAudit.IgnoredHeaderKind}' AND client_address = '{outsider}'";
        Assert.Equal(1L, await postgres.ScalarAsync<long>(management, "SELECT count(*) FROM loomworks_audit_cross_tenant " + where));
        Assert.Equal("ht-beta|ht-alpha.trust.test|/web/tenant/info|true", await postgres.ScalarAsync<string>(management,
            "SELECT concat_ws('|', credential_database, routed_database, path, refused::text) FROM loomworks_audit_cross_tenant " + where));
    }

    [Fact]
    public async Task A_trusted_tenant_header_never_reaches_a_database_dbfilter_refuses()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "hdr_filter_mgmt", new Dictionary<string, string>
        {
            ["dbfilter"] = "hf-a.*",
        });
        var provisioner = host.Get<TenantProvisioner>();
        await provisioner.CreateAsync(new TenantRequest("hf-alpha", "hf-alpha", "admin", "pw-alpha"), Ct);
        await provisioner.CreateAsync(new TenantRequest("hf-beta", "hf-beta", "admin", "pw-beta"), Ct);

        var (status, body) = await InfoAsync(host, null, "hf-alpha");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("hf-alpha", body.GetProperty("current_database").GetString());
        (status, body) = await InfoAsync(host, null, "hf-beta");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("dbfilter", body.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("10.1.2.3", true)]
    [InlineData("10.2.0.1", false)]
    [InlineData("192.0.2.1", false)]
    public void Trust_follows_the_trusted_addresses_and_networks(string client, bool trusted)
    {
        var trust = new TenantHeaderTrust(["127.0.0.1", "::1", "10.1.0.0/16"]);
        Assert.Equal(trusted, trust.Trusts(IPAddress.Parse(client)));
        Assert.False(trust.Trusts(null));
    }
}
