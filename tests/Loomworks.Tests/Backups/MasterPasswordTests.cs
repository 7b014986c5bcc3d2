using Loomworks.Backups;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

[Collection(PostgresGroup.Name)]
public sealed class MasterPasswordTests(PostgresFixture pg)
{
    [Fact]
    public async Task Without_a_master_password_or_with_list_db_off_everything_is_disabled()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "mp-off");
        var none = await Assert.ThrowsAsync<DatabaseManagerException>(() => h.Gate(null).CheckAsync("admin", "10.0.0.1", default));
        Assert.Equal(DatabaseManagerError.Disabled, none.Error);
        Assert.Contains("admin_passwd", none.Message, StringComparison.Ordinal);
        var off = await Assert.ThrowsAsync<DatabaseManagerException>(
            () => h.Gate("secret", listDb: false).CheckAsync("secret", "10.0.0.1", default));
        Assert.Equal(DatabaseManagerError.Disabled, off.Error);
        Assert.Contains("list_db", off.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<DatabaseManagerException>(() => h.Gate(null).CheckEnabledAsync(default));
    }

    [Fact]
    public async Task Wrong_passwords_are_denied_then_rate_limited_per_address()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "mp-rate");
        var gate = h.Gate("secret");
        await gate.CheckAsync("secret", "10.0.0.1", default);
        for (var i = 0; i < Loomworks.Tenancy.MasterPassword.MaxFailures; i++)
        {
            var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => gate.CheckAsync("wrong", "10.0.0.2", default));
            Assert.Equal(DatabaseManagerError.AccessDenied, e.Error);
        }
        var limited = await Assert.ThrowsAsync<DatabaseManagerException>(() => gate.CheckAsync("secret", "10.0.0.2", default));
        Assert.Equal(DatabaseManagerError.TooManyAttempts, limited.Error);
        Assert.NotNull(limited.RetryAfter);
        // Another address is not affected; empty passwords are denied.
        await gate.CheckAsync("secret", "10.0.0.3", default);
        Assert.Equal(DatabaseManagerError.AccessDenied,
            (await Assert.ThrowsAsync<DatabaseManagerException>(() => gate.CheckAsync("", "10.0.0.3", default))).Error);
    }

    [Fact]
    public async Task Change_stores_a_pbkdf2_sha512_hash_that_then_is_the_password()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "mp-change");
        var gate = h.Gate("secret");
        await Assert.ThrowsAsync<DatabaseManagerException>(() => gate.ChangeAsync("wrong", "new-one", "10.0.0.1", default));
        await gate.ChangeAsync("secret", "new-one", "10.0.0.1", default);
        var stored = await h.ScalarTextAsync(h.ManagementName, "SELECT value FROM loomworks_settings WHERE key = 'admin_passwd'");
        Assert.Matches(@"^\$pbkdf2-sha512\$600000\$[A-Za-z0-9./]{22}\$[A-Za-z0-9./]{86}$", stored);
        await gate.CheckAsync("new-one", "10.0.0.1", default);
        await Assert.ThrowsAsync<DatabaseManagerException>(() => gate.CheckAsync("secret", "10.0.0.1", default));
    }

    [Fact]
    public void Hashes_match_passlib_format_and_verify_known_values()
    {
        // Computed with Python's hashlib.pbkdf2_hmac('sha512', b'admin', salt, 1000) and passlib's adapted base64.
        var hash = Loomworks.Tenancy.MasterPassword.Hash("admin", rounds: 1000);
        Assert.True(Loomworks.Tenancy.MasterPassword.VerifyHash("admin", hash));
        Assert.False(Loomworks.Tenancy.MasterPassword.VerifyHash("Admin", hash));
        Assert.False(Loomworks.Tenancy.MasterPassword.VerifyHash("x", "$pbkdf2-sha512$abc$$"));
    }
}
