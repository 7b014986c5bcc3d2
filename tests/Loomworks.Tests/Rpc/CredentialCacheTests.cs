using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Security;
using Loomworks.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// Credential checks and access rights are remembered between stateless calls; every change that decides them —
/// made through the API or straight in the database, as another server instance would — counts on the next call.
/// </summary>
public sealed class CredentialCacheTests(CredentialCacheTests.Fixture fixture) : IClassFixture<CredentialCacheTests.Fixture>, IDisposable
{
    public sealed class Fixture(PostgresFixture postgres) : RpcServerFixture(postgres, "rpc_credcache")
    {
        /// <summary>The clock the server's credential cache reads; it starts at the real time and moves only when told.</summary>
        public FakeTimeProvider Clock { get; } = new(DateTimeOffset.UtcNow);

        protected override void Configure(WebApplicationBuilder builder) =>
            builder.Services.AddSingleton(services => new RpcAuthenticator(services.GetRequiredService<PasswordGate>(), Clock));
    }

    private readonly RpcServer _server = fixture.Server;
    private readonly PostgresFixture _postgres = fixture.Postgres;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private RpcAuthenticator Authenticator => _server.App.Services.GetRequiredService<RpcAuthenticator>();

    /// <summary>A user of the given groups (xml ids) with a password; the admin creates it through the API.</summary>
    private async Task<long> CreateUserAsync(string login, string password, params string[] groups)
    {
        var groupIds = new List<object?>();
        foreach (var group in groups)
        {
            groupIds.Add((long)(int)(await ScalarAsync("SELECT id FROM res_groups WHERE xml_id = $1", group))!);
        }
        return (long)(await _client.ObjectAsync(_server.Db, 2, "admin", "res.users", "create",
        [
            new Dictionary<string, object?>
            {
                ["name"] = login, ["login"] = login, ["password"] = password,
                ["groups_id"] = new List<object?> { new List<object?> { 6L, 0L, groupIds } },
            },
        ]))!;
    }

    private Task<object?> ScalarAsync(string sql, params object[] parameters) =>
        _postgres.ScalarAsync<object>(_server.Db, sql, parameters);

    private async Task<(bool IsFault, object? Value)> SearchReadAsync(long uid, string secret) =>
        await _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, uid, secret, "res.partner", "search_read",
            new List<object?> { new List<object?>() }, new Dictionary<string, object?> { ["fields"] = new List<object?> { "name" },
                ["limit"] = 5L });

    private static long FaultCode((bool IsFault, object? Value) answer)
    {
        Assert.True(answer.IsFault, "expected a fault");
        return (long)((Dictionary<string, object?>)answer.Value!)["faultCode"]!;
    }

    [Fact]
    public async Task A_remembered_password_costs_no_pbkdf2_and_a_changed_one_is_refused_on_the_next_call()
    {
        var uid = await CreateUserAsync("cache_pw", "first-secret", TenantSchema.UserGroup);
        Assert.False((await SearchReadAsync(uid, "first-secret")).IsFault);
        var checks = Authenticator.HashChecks;
        for (var i = 0; i < 5; i++)
        {
            Assert.False((await SearchReadAsync(uid, "first-secret")).IsFault);
        }
        Assert.Equal(checks, Authenticator.HashChecks);

        // A security change elsewhere (another user) moves the stamp: the hashes are read again, PBKDF2 does not run.
        await CreateUserAsync("cache_pw_other", "x-secret", TenantSchema.UserGroup);
        checks = Authenticator.HashChecks;
        Assert.False((await SearchReadAsync(uid, "first-secret")).IsFault);
        Assert.Equal(checks, Authenticator.HashChecks);

        // Changed straight in the database, as another instance would: no event reaches this server, the stamp does.
        await ScalarAsync("UPDATE res_users SET password = $1 WHERE id = $2", Passwords.Hash("second-secret", 1000), (int)uid);
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, "first-secret")));
        Assert.False((await SearchReadAsync(uid, "second-secret")).IsFault);

        // And through the API.
        await _client.ObjectAsync(_server.Db, 2, "admin", "res.users", "write",
            [new List<object?> { uid }, new Dictionary<string, object?> { ["password"] = "third-secret" }]);
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, "second-secret")));
        Assert.False((await SearchReadAsync(uid, "third-secret")).IsFault);
    }

    [Fact]
    public async Task A_revoked_or_expired_api_key_is_refused_on_the_next_call()
    {
        var uid = await CreateUserAsync("cache_key", "key-owner-secret", TenantSchema.UserGroup);
        var key = (string)(await _client.ObjectAsync(_server.Db, uid, "key-owner-secret", "res.users.apikeys", "generate",
            ["cache test"]))!;
        Assert.False((await SearchReadAsync(uid, key)).IsFault);
        Assert.False((await SearchReadAsync(uid, key)).IsFault);
        await ScalarAsync("DELETE FROM res_users_apikeys WHERE user_id = $1", (int)uid);
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, key)));

        // A key that expires while remembered: nothing is written when it expires, the remembered check must still end.
        var expiring = (string)(await _client.ObjectAsync(_server.Db, uid, "key-owner-secret", "res.users.apikeys", "generate",
            ["expiring"]))!;
        const string expireIn = "UPDATE res_users_apikeys SET expiration_date = (now() at time zone 'utc') + $1 WHERE user_id = $2";
        await ScalarAsync(expireIn, TimeSpan.FromHours(1), (int)uid);
        Assert.False((await SearchReadAsync(uid, expiring)).IsFault);
        var checks = Authenticator.HashChecks;
        Assert.False((await SearchReadAsync(uid, expiring)).IsFault);
        Assert.Equal(checks, Authenticator.HashChecks); // remembered
        // The server's clock passes the expiry: the remembered check ends and the key is checked again. The database
        // still holds the key valid on its own clock, so this check passes; the next step expires it there too.
        fixture.Clock.Advance(TimeSpan.FromHours(2));
        Assert.False((await SearchReadAsync(uid, expiring)).IsFault);
        Assert.True(Authenticator.HashChecks > checks, "a key past its expiry was still answered from memory");
        await ScalarAsync(expireIn, TimeSpan.FromSeconds(-1), (int)uid);
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, expiring)));
    }

    [Fact]
    public async Task A_deactivated_user_is_refused_on_the_next_call()
    {
        var uid = await CreateUserAsync("cache_inactive", "inactive-secret", TenantSchema.UserGroup);
        Assert.False((await SearchReadAsync(uid, "inactive-secret")).IsFault);
        await ScalarAsync("UPDATE res_users SET active = false WHERE id = $1", (int)uid);
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, "inactive-secret")));
        await ScalarAsync("UPDATE res_users SET active = true WHERE id = $1", (int)uid);
        Assert.False((await SearchReadAsync(uid, "inactive-secret")).IsFault);
    }

    [Fact]
    public async Task A_removed_group_or_changed_access_right_counts_on_the_next_call()
    {
        var uid = await CreateUserAsync("cache_groups", "groups-secret", TenantSchema.UserGroup);
        Assert.False((await SearchReadAsync(uid, "groups-secret")).IsFault);
        Assert.False((await SearchReadAsync(uid, "groups-secret")).IsFault);

        await ScalarAsync("DELETE FROM res_groups_users_rel WHERE uid = $1", (int)uid);
        Assert.Equal(4, FaultCode(await SearchReadAsync(uid, "groups-secret")));

        // Read-only: reading comes back, creating stays refused.
        await ScalarAsync("INSERT INTO res_groups_users_rel (gid, uid) SELECT id, $1 FROM res_groups WHERE xml_id = $2", (int)uid,
            TenantSchema.ReadOnlyGroup);
        Assert.False((await SearchReadAsync(uid, "groups-secret")).IsFault);
        var create = await _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, uid, "groups-secret", "res.partner", "create",
            new List<object?> { new Dictionary<string, object?> { ["name"] = "refused" } });
        Assert.Equal(4, FaultCode(create));

        // The group's right itself withdrawn.
        await ScalarAsync(
            "UPDATE ir_model_access SET perm_read = false WHERE model = 'res.partner' " +
            "AND group_id = (SELECT id FROM res_groups WHERE xml_id = $1)",
            TenantSchema.ReadOnlyGroup);
        try
        {
            Assert.Equal(4, FaultCode(await SearchReadAsync(uid, "groups-secret")));
        }
        finally
        {
            await ScalarAsync(
                "UPDATE ir_model_access SET perm_read = true WHERE model = 'res.partner' " +
                "AND group_id = (SELECT id FROM res_groups WHERE xml_id = $1)",
                TenantSchema.ReadOnlyGroup);
        }
        Assert.False((await SearchReadAsync(uid, "groups-secret")).IsFault);
    }

    [Fact]
    public async Task The_stamp_moves_with_security_changes_only()
    {
        var before = (Guid)(await ScalarAsync($"SELECT stamp FROM {SecurityStamp.Table}"))!;
        // A login stamps login_date: not a security change.
        var (_, uid) = await _client.XmlAsync("/xmlrpc/2/common", "authenticate", _server.Db, "admin", "admin",
            new Dictionary<string, object?>());
        Assert.Equal(2L, uid);
        await ScalarAsync("UPDATE res_partner SET comment = 'not security' WHERE id = 3");
        Assert.Equal(before, (Guid)(await ScalarAsync($"SELECT stamp FROM {SecurityStamp.Table}"))!);

        foreach (var change in new[]
        {
            "UPDATE res_users SET login = login WHERE id = 2",
            "UPDATE res_groups SET name = name WHERE id = 4",
            "UPDATE ir_model_access SET perm_read = perm_read WHERE false",
            "DELETE FROM res_users_apikeys WHERE false",
            "DELETE FROM res_groups_users_rel WHERE false",
        })
        {
            await ScalarAsync(change);
            var after = (Guid)(await ScalarAsync($"SELECT stamp FROM {SecurityStamp.Table}"))!;
            Assert.NotEqual(before, after);
            before = after;
        }
    }

    [Fact]
    public async Task A_call_that_fails_under_a_remembered_check_gone_stale_is_refused_as_access_denied()
    {
        var uid = await CreateUserAsync("cache_stale", "stale-secret", TenantSchema.UserGroup);
        Task<(bool IsFault, object? Value)> BadFieldAsync() =>
            _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, uid, "stale-secret", "res.partner", "search_read",
                new List<object?> { new List<object?>() },
                new Dictionary<string, object?> { ["fields"] = new List<object?> { "no_such_field" } });
        Task<(bool IsFault, object? Value)> FieldsGetAsync() =>
            _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, uid, "stale-secret", "res.partner", "fields_get",
                new List<object?>(), new Dictionary<string, object?> { ["attributes"] = new List<object?> { "type" } });
        Assert.False((await SearchReadAsync(uid, "stale-secret")).IsFault);
        Assert.Equal(1, FaultCode(await BadFieldAsync()));
        Assert.False((await FieldsGetAsync()).IsFault);

        // The call's own error, or its answer without a statement, must not leak past a password changed meanwhile.
        await ScalarAsync("UPDATE res_users SET password = $1 WHERE id = $2", Passwords.Hash("other-secret", 1000), (int)uid);
        Assert.Equal(3, FaultCode(await BadFieldAsync()));
        Assert.Equal(3, FaultCode(await FieldsGetAsync()));
        Assert.Equal(3, FaultCode(await SearchReadAsync(uid, "stale-secret")));
    }

    [Fact]
    public async Task Wrong_secrets_are_never_remembered()
    {
        var uid = await CreateUserAsync("cache_wrong", "right-secret", TenantSchema.UserGroup);
        Assert.False((await SearchReadAsync(uid, "right-secret")).IsFault);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(3, FaultCode(await SearchReadAsync(uid, "wrong-secret")));
        }
        // Another user's uid with this user's remembered secret.
        Assert.Equal(3, FaultCode(await SearchReadAsync(2, "right-secret")));
    }
}
