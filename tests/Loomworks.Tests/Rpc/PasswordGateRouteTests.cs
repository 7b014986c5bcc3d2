using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Loomworks.Rpc;
using Loomworks.Security;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// Every route that checks a tenant user's password goes through one gate on the real server: an unknown login does
/// the same hash work as a known one, and an address cooled down on one route is refused by all of them.
/// </summary>
[Collection(PostgresGroup.Name)]
public sealed class PasswordGateRouteTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Task<RpcServer> StartAsync(PostgresFixture postgres, string name, int after) =>
        RpcServer.StartAsync(postgres, name, new Dictionary<string, string>
        {
            ["loomworks_login_cooldown_after"] = after.ToString(CultureInfo.InvariantCulture),
            ["loomworks_login_cooldown_duration"] = "600",
            ["proxy_mode"] = "True",
        });

    /// <summary>POST /web/tenant/login for <paramref name="db"/> from <paramref name="client"/> (X-Forwarded-For of the trusted local
    /// proxy).</summary>
    private static async Task<HttpResponseMessage> TenantLoginAsync(RpcClient rpc, string db, string login, string password, string client)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/web/tenant/login")
        {
            Content = new StringContent($$"""{"login": "{{login}}", "password": "{{password}}"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Odoo-Database", db);
        request.Headers.Add("X-Forwarded-For", client);
        return await rpc.Http.SendAsync(request, Ct);
    }

    private static async Task<object?> XmlFromAsync(RpcClient rpc, string service, string method, string client, params object?[] args)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/xmlrpc/2/" + service)
        {
            Content = new ByteArrayContent(XmlRpcCodec.WriteRequest(method, args)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("text/xml");
        request.Headers.Add("X-Forwarded-For", client);
        using var response = await rpc.Http.SendAsync(request, Ct);
        var (isFault, value) = XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync(Ct));
        return isFault ? new FaultException((Dictionary<string, object?>)value!) : value;
    }

    [Fact]
    public async Task An_unknown_login_or_uid_does_the_hash_work_of_a_known_one_on_every_route()
    {
        await using var server = await StartAsync(postgres, "gate_unknown", after: 1000);
        using var rpc = new RpcClient(server.Url);
        var gate = server.App.Services.GetRequiredService<PasswordGate>();
        var authenticator = server.App.Services.GetRequiredService<RpcAuthenticator>();
        var empty = new Dictionary<string, object?>();

        var before = authenticator.HashChecks;
        Assert.Equal(false, await XmlFromAsync(rpc, "common", "authenticate", "198.51.100.20", server.Db, "nobody", "x", empty));
        Assert.Equal(before + 1, authenticator.HashChecks);
        before = authenticator.HashChecks;
        var fault = await XmlFromAsync(rpc, "object", "execute_kw", "198.51.100.20", server.Db, 987_654L, "x", "res.partner",
            "search_count", new List<object?> { new List<object?>() });
        Assert.IsType<FaultException>(fault);
        Assert.Equal(before + 1, authenticator.HashChecks);

        before = gate.HashChecks;
        using (var unknown = await TenantLoginAsync(rpc, server.Db, "nobody", "x", "198.51.100.20"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        }
        Assert.Equal(before + 1, gate.HashChecks);
    }

    [Fact]
    public async Task The_tenant_login_page_answers_an_unknown_login_as_slowly_as_a_wrong_password()
    {
        await using var server = await StartAsync(postgres, "gate_timing", after: 1000);
        using var rpc = new RpcClient(server.Url);

        // The page answers as slowly for an unknown login as for a known one: a loose relation of medians, since the
        // measure is only meant to tell a hash from no hash (a wrong password takes hundreds of times longer than none).
        var unknownTimes = new List<double>();
        var knownTimes = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            unknownTimes.Add(await TimeAsync(() => TenantLoginAsync(rpc, server.Db, "nobody-" + i, "x", "198.51.100.21")));
            knownTimes.Add(await TimeAsync(() => TenantLoginAsync(rpc, server.Db, "admin", "wrong-" + i, "198.51.100.21")));
        }
        Assert.True(Median(unknownTimes) >= Median(knownTimes) / 4,
            $"unknown logins answered in {Median(unknownTimes):F1} ms, wrong passwords in {Median(knownTimes):F1} ms (medians)");
    }

    private static async Task<double> TimeAsync(Func<Task<HttpResponseMessage>> send)
    {
        var clock = Stopwatch.StartNew();
        using var response = await send();
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        return clock.Elapsed.TotalMilliseconds;
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    [Fact]
    public async Task An_address_cooled_down_on_one_route_is_refused_by_all_and_the_tenant_page_answers_429()
    {
        const int after = 3;
        await using var server = await StartAsync(postgres, "gate_routes", after);
        using var rpc = new RpcClient(server.Url);
        const string guesser = "198.51.100.30";

        // Failures on the tenant page, unknown logins among them, count for the cooldown of the whole database.
        for (var i = 0; i < after; i++)
        {
            using var wrong = await TenantLoginAsync(rpc, server.Db, i == 0 ? "nobody" : "admin", "wrong-" + i, guesser);
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }
        using (var page = await TenantLoginAsync(rpc, server.Db, "admin", "admin", guesser))
        {
            Assert.Equal((HttpStatusCode)429, page.StatusCode);
            var retry = page.Headers.RetryAfter?.Delta;
            Assert.NotNull(retry);
            Assert.InRange(retry.Value.TotalSeconds, 1, 600);
            Assert.Contains(LoginCooldown.Message, await page.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        var empty = new Dictionary<string, object?>();
        Assert.Equal(false, await XmlFromAsync(rpc, "common", "authenticate", guesser, server.Db, "admin", "admin", empty));
        var denied = Assert.IsType<FaultException>(await XmlFromAsync(rpc, "object", "execute_kw", guesser, server.Db, 2L, "admin",
            "res.partner", "search_count", new List<object?> { new List<object?>() }));
        Assert.Contains(LoginCooldown.Message, denied.Message, StringComparison.Ordinal);

        // Another address is untouched, and the page's own successes still open sessions.
        using var other = await TenantLoginAsync(rpc, server.Db, "admin", "admin", "198.51.100.31");
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);

        // A cooldown reached through RPC is honoured by the page too.
        const string rpcGuesser = "198.51.100.32";
        for (var i = 0; i < after; i++)
        {
            Assert.Equal(false, await XmlFromAsync(rpc, "common", "authenticate", rpcGuesser, server.Db, "admin", "bad-" + i, empty));
        }
        using var afterRpc = await TenantLoginAsync(rpc, server.Db, "admin", "admin", rpcGuesser);
        Assert.Equal((HttpStatusCode)429, afterRpc.StatusCode);
    }
}
