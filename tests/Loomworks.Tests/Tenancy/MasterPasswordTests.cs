using Loomworks.Tenancy;

namespace Loomworks.Tests.Tenancy;

public sealed class MasterPasswordTests
{
    // Made with Python's hashlib.pbkdf2_hmac('sha512', b'correct horse', bytes(range(16)), 600000), encoded as passlib does.
    private const string PasslibHash =
        "$pbkdf2-sha512$600000$AAECAwQFBgcICQoLDA0ODw$" +
        "QRWzuEKsHePc0aN0CRVWP5b.JflUT4IZpZTCU0dRwV.UnujYtPnhnLxnVGu0oBewgaJzC8FToY/0r8SBpMK/7g";

    [Fact]
    public void A_passlib_pbkdf2_sha512_hash_verifies_its_password_only()
    {
        Assert.True(MasterPassword.VerifyHash("correct horse", PasslibHash));
        Assert.False(MasterPassword.VerifyHash("correct horse!", PasslibHash));
    }

    [Theory]
    [InlineData("$pbkdf2-sha512$x$AAEC$AAEC")]
    [InlineData("$pbkdf2-sha512$1000$***$AAEC")]
    [InlineData("$pbkdf2-sha256$1000$AAEC$AAEC")]
    [InlineData("$pbkdf2-sha512$99999999999$AAEC$AAEC")]
    [InlineData("")]
    public void A_malformed_hash_never_matches(string hash) => Assert.False(MasterPassword.VerifyHash("x", hash));

    [Fact]
    public void Our_hashes_use_passlibs_format_and_round_trip()
    {
        var hash = MasterPassword.Hash("s3cret", rounds: 1000);
        Assert.StartsWith("$pbkdf2-sha512$1000$", hash, StringComparison.Ordinal);
        Assert.DoesNotContain('+', hash);
        Assert.True(MasterPassword.VerifyHash("s3cret", hash));
    }
}
