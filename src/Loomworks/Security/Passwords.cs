using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Loomworks.Security;

/// <summary>
/// PBKDF2-SHA512 hashes in passlib's format (<c>$pbkdf2-sha512$rounds$salt$checksum</c>), the format Odoo stores, so a
/// database moved between the two keeps working passwords.
/// </summary>
public static class Passwords
{
    /// <summary>Odoo 18's default for passwords.</summary>
    public const int PasswordRounds = 600_000;

    /// <summary>Odoo's rounds for API keys: they are long random strings, so fewer rounds suffice.</summary>
    public const int ApiKeyRounds = 6_000;

    private const string Prefix = "$pbkdf2-sha512$";

    public static string Hash(string secret, int rounds = PasswordRounds)
    {
        ArgumentNullException.ThrowIfNull(secret);
        var salt = RandomNumberGenerator.GetBytes(16);
        var checksum = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(secret), salt, rounds, HashAlgorithmName.SHA512, 64);
        return string.Create(CultureInfo.InvariantCulture, $"{Prefix}{rounds}${AdaptedBase64(salt)}${AdaptedBase64(checksum)}");
    }

    /// <summary>True when <paramref name="secret"/> matches <paramref name="stored"/>; false for anything malformed.</summary>
    public static bool Verify(string secret, string? stored)
    {
        if (!TryParse(stored, out var rounds, out var salt, out var expected))
        {
            return false;
        }
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(secret), salt, rounds, HashAlgorithmName.SHA512, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>
    /// Why <paramref name="hash"/> cannot be stored as a user's password hash, or null when it can: it must be passlib's
    /// pbkdf2-sha512 with at least <paramref name="minimumRounds"/> rounds, a salt of 16 bytes or more and a 64-byte checksum.
    /// </summary>
    public static string? HashProblem(string field, string? hash, int minimumRounds = PasswordRounds)
    {
        if (hash is null || hash.Length > 200 || !TryParse(hash, out var rounds, out var salt, out var checksum))
        {
            return $"{field} must be a passlib pbkdf2-sha512 hash ({Prefix}<rounds>$<salt>$<checksum>)";
        }
        if (rounds < minimumRounds)
        {
            return $"{field} has {rounds} rounds; at least {minimumRounds} are required";
        }
        return salt.Length < 16 || checksum.Length != 64
            ? $"{field} must have a salt of at least 16 bytes and a 64-byte checksum"
            : null;
    }

    private static bool TryParse(string? stored, out int rounds, out byte[] salt, out byte[] checksum)
    {
        rounds = 0;
        salt = checksum = [];
        if (stored is null || !stored.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var parts = stored[Prefix.Length..].Split('$');
        if (parts.Length != 3 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out rounds)
            || rounds is < 1 or > 10_000_000)
        {
            return false;
        }
        try
        {
            salt = FromAdaptedBase64(parts[1]);
            checksum = FromAdaptedBase64(parts[2]);
        }
        catch (FormatException)
        {
            return false;
        }
        return checksum.Length > 0;
    }

    /// <summary>passlib's "ab64": base64 with '.' for '+' and no padding.</summary>
    private static string AdaptedBase64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '.');

    private static byte[] FromAdaptedBase64(string text)
    {
        var b64 = text.Replace('.', '+');
        return Convert.FromBase64String(b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '='));
    }
}
