using Loomworks.Security;

namespace Loomworks.Tests.Security;

/// <summary>The one password gate on its own: decoy work for unknown logins, the cooldown it shares, API key hashes.</summary>
public sealed class PasswordGateTests
{
    private static readonly string Known = Passwords.Hash("right", rounds: 1000);

    [Fact]
    public void An_unknown_login_goes_through_the_same_hash_work_as_a_wrong_password_and_is_counted()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        var gate = new PasswordGate(new LoginCooldown(2, TimeSpan.FromMinutes(1), time));

        var before = gate.HashChecks;
        Assert.Equal(PasswordVerdict.Wrong, gate.Check("db", "10.0.0.1", "guess", passwordHash: null).Verdict);
        Assert.Equal(before + 1, gate.HashChecks);
        Assert.Equal(PasswordVerdict.Wrong, gate.Check("db", "10.0.0.1", "guess", Known).Verdict);
        Assert.Equal(before + 2, gate.HashChecks);

        // Two failures, unknown login or not, cool that address down: nothing is hashed, even the right password.
        Assert.Equal(TimeSpan.FromMinutes(1), gate.CoolingFor("db", "10.0.0.1"));
        Assert.Equal(PasswordVerdict.CoolingDown, gate.Check("db", "10.0.0.1", "right", Known).Verdict);
        Assert.Equal(before + 2, gate.HashChecks);
        Assert.Equal(PasswordVerdict.Password, gate.Check("db", "10.0.0.2", "right", Known).Verdict);

        time.Now += TimeSpan.FromSeconds(59);
        Assert.Equal(TimeSpan.FromSeconds(1), gate.CoolingFor("db", "10.0.0.1"));
        time.Now += TimeSpan.FromSeconds(1);
        Assert.Null(gate.CoolingFor("db", "10.0.0.1"));
        Assert.Equal(PasswordVerdict.Password, gate.Check("db", "10.0.0.1", "right", Known).Verdict);
    }

    [Fact]
    public void A_user_without_a_password_never_matches_the_decoy_and_api_key_hashes_are_tried_after_the_password()
    {
        var gate = new PasswordGate(new LoginCooldown(0, TimeSpan.FromMinutes(1)));
        var key = Passwords.Hash("0123456789abcdef", Passwords.ApiKeyRounds);
        Assert.False(gate.Check("db", null, "", passwordHash: null).Accepted);
        var check = gate.Check("db", null, "0123456789abcdef", passwordHash: null, [Known, key]);
        Assert.Equal(new PasswordCheck(PasswordVerdict.ApiKey, 1), check);
        Assert.Equal(PasswordVerdict.Password, gate.Check("db", null, "right", Known, [key]).Verdict);
    }

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
