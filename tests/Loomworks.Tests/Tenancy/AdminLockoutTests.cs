using System.Globalization;
using System.Net;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Loomworks.Tests.Tenancy;

/// <summary>
/// The admin API's master password lockout: a request without credentials is a 401 that counts for nothing, failures
/// are counted per address and, under a global ceiling, across all of them.
/// </summary>
public sealed class AdminLockoutTests(PostgresFixture postgres)
{
    private const string Master = "master-of-lockouts";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpResponseMessage> ListAsync(TenancyHost host, string? password, string? client = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/tenants");
        if (password is not null)
        {
            request.Headers.Authorization = TenancyHost.Basic("admin", password);
        }
        if (client is not null)
        {
            request.Headers.Add("X-Forwarded-For", client);
        }
        return await host.Client.SendAsync(request, Ct);
    }

    [Fact]
    public async Task Requests_without_credentials_are_401_and_never_lock_the_address_out()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "lock_noauth_mgmt",
            new Dictionary<string, string> { ["admin_passwd"] = Master });
        for (var i = 0; i < MasterPassword.MaxFailures * 2; i++)
        {
            using var bare = await ListAsync(host, null);
            Assert.Equal(HttpStatusCode.Unauthorized, bare.StatusCode);
            Assert.NotEmpty(bare.Headers.WwwAuthenticate);
        }
        using var allowed = await ListAsync(host, Master);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);

        // Wrong passwords still count.
        for (var i = 0; i < MasterPassword.MaxFailures; i++)
        {
            using var wrong = await ListAsync(host, "wrong");
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }
        using var locked = await ListAsync(host, Master);
        Assert.Equal((HttpStatusCode)429, locked.StatusCode);
    }

    [Fact]
    public async Task Wrong_passwords_spread_over_many_addresses_reach_a_global_ceiling_that_locks_everyone_out()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "lock_global_mgmt", new Dictionary<string, string>
        {
            ["admin_passwd"] = Master,
            ["proxy_mode"] = "True",
        });
        // Each address stays under its own limit; together they reach the ceiling.
        for (var i = 0; i < MasterPassword.MaxGlobalFailures; i++)
        {
            using var wrong = await ListAsync(host, "guess-" + i, string.Create(CultureInfo.InvariantCulture, $"198.51.100.{i % 100 + 1}"));
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }
        using var locked = await ListAsync(host, Master, "192.0.2.200");
        Assert.Equal((HttpStatusCode)429, locked.StatusCode);
        Assert.InRange(locked.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, MasterPassword.GlobalLockOut.TotalSeconds);
    }

    [Fact]
    public async Task The_global_lockout_ends_after_its_time_and_spares_nobody_while_it_lasts()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "lock_clock_mgmt");
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var master = new MasterPassword(host.Get<ManagementDatabase>(), Master, time);
        for (var i = 0; i < MasterPassword.MaxGlobalFailures - 1; i++)
        {
            Assert.Equal(MasterPasswordResult.Rejected, await master.VerifyAsync("guess", "10.9.0." + (i % 200), Ct));
        }
        Assert.Equal(MasterPasswordResult.Accepted, await master.VerifyAsync(Master, "10.9.1.1", Ct));
        // Failures older than the window do not add up: a slow trickle never reaches the ceiling.
        time.Advance(MasterPassword.FailureWindow + TimeSpan.FromSeconds(1));
        for (var i = 0; i < MasterPassword.MaxGlobalFailures; i++)
        {
            Assert.Equal(MasterPasswordResult.Rejected, await master.VerifyAsync("guess", "10.8.0." + (i % 200), Ct));
        }
        Assert.Equal(MasterPasswordResult.RateLimited, await master.VerifyAsync(Master, "10.9.1.2", Ct));
        Assert.Equal(MasterPasswordResult.RateLimited, await master.WithoutCredentialsAsync("10.9.1.3", Ct));
        time.Advance(MasterPassword.GlobalLockOut);
        Assert.Equal(MasterPasswordResult.Accepted, await master.VerifyAsync(Master, "10.9.1.2", Ct));
    }
}
