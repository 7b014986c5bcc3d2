using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Loomworks.Tests.Server;

/// <summary>X-Forwarded-* is believed only in proxy_mode and only from the configured proxies.</summary>
public sealed class ProxyModeTests(PostgresFixture postgres)
{
    private async Task<string> SeenHostAsync(bool proxyMode, string trustedProxies)
    {
        await using var app = await LoomworksHost.StartAsync(options =>
        {
            options.UseCluster(postgres.Endpoint)
                .Set("loomworks_mgmt_db", "proxy_mode_mgmt")
                .Set("proxy_mode", proxyMode ? "True" : "False")
                .Set("loomworks_trusted_proxies", trustedProxies);
            options.MigrateManagement = true;
            // Under a tenant-less prefix: the tenant router would answer 404 for an unknown host elsewhere.
            options.App = app => app.MapGet("/api/v1/test/host", (HttpContext http) => $"{http.Request.Host.Host} {http.Request.Scheme}");
        });
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{app.Url}/api/v1/test/host");
        request.Headers.Add("X-Forwarded-Host", "acme.example.test");
        request.Headers.Add("X-Forwarded-Proto", "https");
        request.Headers.Add("X-Forwarded-For", "203.0.113.9");
        return await (await http.SendAsync(request)).Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task Forwarded_headers_from_a_trusted_proxy_are_applied_in_proxy_mode()
    {
        Assert.Equal("acme.example.test https", await SeenHostAsync(proxyMode: true, "127.0.0.1"));
    }

    [Fact]
    public async Task Forwarded_headers_from_an_untrusted_address_are_ignored()
    {
        Assert.Equal("127.0.0.1 http", await SeenHostAsync(proxyMode: true, "10.0.0.1"));
    }

    [Fact]
    public async Task Forwarded_headers_are_ignored_without_proxy_mode()
    {
        Assert.Equal("127.0.0.1 http", await SeenHostAsync(proxyMode: false, "127.0.0.1"));
    }
}
