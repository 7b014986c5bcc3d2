using System.Globalization;
using System.Net.Http.Headers;
using Loomworks.Rpc;
using Loomworks.Security;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// Odoo's login cooldown on the real server: failures counted per database and client address, guesses refused
/// while cooling, credentials already checked still served, other addresses and databases untouched.
/// </summary>
[Collection(PostgresGroup.Name)]
public sealed class LoginCooldownTests(PostgresFixture postgres)
{
    private const int After = 3;
    private static readonly TimeSpan Duration = TimeSpan.FromMinutes(1);

    private static Task<RpcServer> StartAsync(PostgresFixture postgres, string name, params string[] extraTenants) =>
        RpcServer.StartAsync(postgres, name, new Dictionary<string, string>
        {
            ["loomworks_login_cooldown_after"] = After.ToString(CultureInfo.InvariantCulture),
            ["loomworks_login_cooldown_duration"] = ((int)Duration.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            ["proxy_mode"] = "True",
        }, extraTenants);

    /// <summary>common.authenticate from <paramref name="client"/> (sent as X-Forwarded-For by the trusted local proxy).</summary>
    private static async Task<object?> AuthenticateAsync(RpcClient rpc, string db, string password, string client)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/xmlrpc/2/common")
        {
            Content = new ByteArrayContent(
                XmlRpcCodec.WriteRequest("authenticate", [db, "admin", password, new Dictionary<string, object?>()])),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("text/xml");
        request.Headers.Add("X-Forwarded-For", client);
        using var response = await rpc.Http.SendAsync(request, TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        var (isFault, value) = XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));
        Assert.False(isFault);
        return value;
    }

    [Fact]
    public async Task Repeated_failures_cool_down_that_address_on_that_database_and_nothing_else()
    {
        await using var server = await StartAsync(postgres, "cooldown_one", "cooldown_two");
        using var rpc = new RpcClient(server.Url);
        const string guesser = "198.51.100.7";

        // A checked password is remembered before the guessing starts: the integration that holds it keeps working.
        Assert.Equal(2L, await AuthenticateAsync(rpc, server.Db, "admin", guesser));
        for (var i = 0; i < After; i++)
        {
            Assert.Equal(false, await AuthenticateAsync(rpc, server.Db, "wrong-" + i, guesser));
        }

        // Cooling: even the right password is not tried by authenticate, as Odoo answers False.
        Assert.Equal(false, await AuthenticateAsync(rpc, server.Db, "admin", guesser));
        // Another address, and the same address on another database, are untouched.
        Assert.Equal(2L, await AuthenticateAsync(rpc, server.Db, "admin", "198.51.100.8"));
        Assert.Equal(2L, await AuthenticateAsync(rpc, "cooldown_two", "admin", guesser));

        // The server itself sees the local proxy's address here: cool that one down too and check execute_kw.
        for (var i = 0; i < After; i++)
        {
            var refused = await rpc.XmlAsync("/xmlrpc/2/common", "authenticate", server.Db, "admin", "nope",
                new Dictionary<string, object?>());
            Assert.Equal(false, refused.Value);
        }
        var guess = await Assert.ThrowsAsync<FaultException>(
            () => rpc.ObjectAsync(server.Db, 2, "another-guess", "res.partner", "search_count", [new List<object?>()]));
        Assert.Contains(LoginCooldown.Message, guess.Message, StringComparison.Ordinal);
        // The password checked before the cooldown is served without a new check.
        Assert.IsType<long>(await rpc.ObjectAsync(server.Db, 2, "admin", "res.partner", "search_count", [new List<object?>()]));

        var (status, body) = await rpc.JsonAsync("/web/session/authenticate",
            new { jsonrpc = "2.0", method = "call", @params = new { db = server.Db, login = "admin", password = "admin" }, id = 1 });
        Assert.Equal(200, status);
        Assert.Equal("odoo.exceptions.AccessDenied", body.GetProperty("error").GetProperty("data").GetProperty("name").GetString());
        Assert.Equal(LoginCooldown.Message, body.GetProperty("error").GetProperty("data").GetProperty("message").GetString());

        // A success clears the count, so a later typo does not lock (the end of a wait is the clock's: see below).
        const string typist = "198.51.100.9";
        for (var i = 0; i < After - 1; i++)
        {
            Assert.Equal(false, await AuthenticateAsync(rpc, server.Db, "typo-" + i, typist));
        }
        Assert.Equal(2L, await AuthenticateAsync(rpc, server.Db, "admin", typist));
        Assert.Equal(false, await AuthenticateAsync(rpc, server.Db, "typo", typist));
        Assert.Equal(2L, await AuthenticateAsync(rpc, server.Db, "admin", typist));
    }

    [Fact]
    public void The_count_is_per_database_and_address_and_zero_switches_it_off()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var cooldown = new LoginCooldown(2, TimeSpan.FromMinutes(1), time);
        cooldown.Failed("a", "10.0.0.1");
        Assert.False(cooldown.IsCooling("a", "10.0.0.1"));
        cooldown.Failed("a", "10.0.0.1");
        Assert.True(cooldown.IsCooling("a", "10.0.0.1"));
        Assert.False(cooldown.IsCooling("b", "10.0.0.1"));
        Assert.False(cooldown.IsCooling("a", "10.0.0.2"));
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.True(cooldown.IsCooling("a", "10.0.0.1"));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(cooldown.IsCooling("a", "10.0.0.1"));
        // A failure after the wait starts a new wait at once (one try per duration), as in Odoo.
        cooldown.Failed("a", "10.0.0.1");
        Assert.True(cooldown.IsCooling("a", "10.0.0.1"));
        cooldown.Succeeded("a", "10.0.0.1");
        Assert.False(cooldown.IsCooling("a", "10.0.0.1"));

        var off = new LoginCooldown(0, TimeSpan.FromMinutes(1), time);
        for (var i = 0; i < 100; i++)
        {
            off.Failed("a", "10.0.0.1");
        }
        Assert.False(off.IsCooling("a", "10.0.0.1"));
    }
}
