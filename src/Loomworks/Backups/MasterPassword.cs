using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Configuration;
using Loomworks.Tenancy;

namespace Loomworks.Backups;

/// <summary>The gate in front of every database-manager call; one implementation, swappable for Tenancy's own.</summary>
public interface IMasterPasswordCheck
{
    /// <summary>Throws <see cref="DatabaseManagerException"/> unless management is enabled (and, when given, the password is right).</summary>
    Task CheckAsync(string? password, string clientAddress, CancellationToken cancellationToken);

    /// <summary>Throws unless management is enabled at all (list_db True and a master password set); no password asked.</summary>
    Task CheckEnabledAsync(CancellationToken cancellationToken);

    /// <summary>Checks <paramref name="oldPassword"/> and stores the hash of <paramref name="newPassword"/>.</summary>
    Task ChangeAsync(string? oldPassword, string newPassword, string clientAddress, CancellationToken cancellationToken);
}

/// <summary>
/// The master password: the hash stored in loomworks_settings (key admin_passwd) when one was set through the manager,
/// else the admin_passwd of loomworks.conf (plain or a passlib hash). Failures are counted per client address.
/// </summary>
public sealed class MasterPasswordGate(LoomworksSettings settings, ManagementDatabase management, TimeProvider? clock = null)
    : IMasterPasswordCheck
{
    public const string SettingKey = "admin_passwd";

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Attempts> _failures = new(StringComparer.Ordinal);

    /// <summary>Failed attempts a client address may make within <see cref="Window"/> before it is turned away.</summary>
    public int MaxFailures { get; init; } = 5;
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(1);

    public async Task CheckEnabledAsync(CancellationToken cancellationToken) => await StoredAsync(cancellationToken);

    public async Task CheckAsync(string? password, string clientAddress, CancellationToken cancellationToken)
    {
        var stored = await StoredAsync(cancellationToken);
        var now = _clock.GetUtcNow();
        if (_failures.TryGetValue(clientAddress, out var attempts) && attempts.Count >= MaxFailures
            && now - attempts.Since < Window)
        {
            throw new DatabaseManagerException(DatabaseManagerError.TooManyAttempts,
                "too many wrong master passwords from this address; try again later")
            { RetryAfter = Window - (now - attempts.Since) };
        }
        if (!string.IsNullOrEmpty(password) && MasterPasswordHash.Verify(password, stored))
        {
            _failures.TryRemove(clientAddress, out _);
            return;
        }
        _failures.AddOrUpdate(clientAddress, _ => new Attempts(1, now),
            (_, a) => now - a.Since >= Window ? new Attempts(1, now) : a with { Count = a.Count + 1 });
        throw new DatabaseManagerException(DatabaseManagerError.AccessDenied, "Access Denied: wrong master password");
    }

    public async Task ChangeAsync(string? oldPassword, string newPassword, string clientAddress, CancellationToken cancellationToken)
    {
        await CheckAsync(oldPassword, clientAddress, cancellationToken);
        if (string.IsNullOrEmpty(newPassword))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidName, "the new master password must not be empty");
        }
        await using var command = management.DataSource.CreateCommand("""
            INSERT INTO loomworks_settings (key, value) VALUES ($1, $2)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
            """);
        command.Parameters.AddWithValue(SettingKey);
        command.Parameters.AddWithValue(MasterPasswordHash.Hash(newPassword));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<string> StoredAsync(CancellationToken cancellationToken)
    {
        if (!settings.GetBool(ConfigKeys.ListDb))
        {
            throw new DatabaseManagerException(DatabaseManagerError.Disabled,
                "the database manager has been disabled by the administrator (list_db = False)");
        }
        await using var command = management.DataSource.CreateCommand("SELECT value FROM loomworks_settings WHERE key = $1");
        command.Parameters.AddWithValue(SettingKey);
        var stored = await command.ExecuteScalarAsync(cancellationToken) as string ?? settings.AdminPassword;
        return string.IsNullOrEmpty(stored)
            ? throw new DatabaseManagerException(DatabaseManagerError.Disabled,
                "the database manager is disabled until a master password is set (admin_passwd in loomworks.conf)")
            : stored;
    }

    private sealed record Attempts(int Count, DateTimeOffset Since);
}

/// <summary>Master-password hashes in passlib's pbkdf2_sha512 format, as Odoo writes them: <c>$pbkdf2-sha512$600000$salt$hash</c>.</summary>
public static class MasterPasswordHash
{
    public const int Rounds = 600_000;
    private const string Prefix = "$pbkdf2-sha512$";

    public static string Hash(string password, int rounds = Rounds)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, rounds, HashAlgorithmName.SHA512, 64);
        return $"{Prefix}{rounds}${AdaptedBase64(salt)}${AdaptedBase64(hash)}";
    }

    /// <summary>True when <paramref name="password"/> matches <paramref name="stored"/>: a pbkdf2-sha512 hash, or a plain value as Odoo's config allows.</summary>
    public static bool Verify(string password, string stored)
    {
        var given = Encoding.UTF8.GetBytes(password);
        if (!stored.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return CryptographicOperations.FixedTimeEquals(given, Encoding.UTF8.GetBytes(stored));
        }
        var parts = stored[Prefix.Length..].Split('$');
        if (parts.Length != 3 || !int.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out var rounds)
            || rounds < 1 || FromAdaptedBase64(parts[1]) is not { } salt || FromAdaptedBase64(parts[2]) is not { Length: > 0 } expected)
        {
            return false;
        }
        var actual = Rfc2898DeriveBytes.Pbkdf2(given, salt, rounds, HashAlgorithmName.SHA512, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    // passlib's "adapted base64": '.' for '+', no padding.
    private static string AdaptedBase64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '.');

    private static byte[]? FromAdaptedBase64(string text)
    {
        var b64 = text.Replace('.', '+');
        b64 += new string('=', (4 - b64.Length % 4) % 4);
        try
        {
            return Convert.FromBase64String(b64);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
