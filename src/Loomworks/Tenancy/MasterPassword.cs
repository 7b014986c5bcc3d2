using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Security;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>The answer to a master password check.</summary>
public enum MasterPasswordResult
{
    Accepted,
    Rejected,
    /// <summary>No admin_passwd is configured: everything that needs it stays off.</summary>
    Disabled,
    /// <summary>Too many recent failures from this client address; try again after the lock-out.</summary>
    RateLimited,
}

/// <summary>
/// The master password (admin_passwd): plain or passlib pbkdf2_sha512 in the configuration, or a hash stored in
/// loomworks_settings by a later change, which wins. Failures are counted per client address and locked out.
/// </summary>
public sealed class MasterPassword(ManagementDatabase management, string? configured, TimeProvider? time = null)
{
    public const string SettingKey = "admin_passwd";
    public const int DefaultRounds = 600_000;
    public const int MaxFailures = 5;
    public static readonly TimeSpan FailureWindow = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan LockOut = TimeSpan.FromMinutes(1);
    private const string Prefix = "$pbkdf2-sha512$";

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Failures> _failures = new(StringComparer.Ordinal);
    // A verified candidate is remembered by its SHA-256 so each admin call does not pay 600,000 PBKDF2 rounds.
    private volatile Verified? _verified;

    private sealed record Verified(string Stored, byte[] CandidateDigest);

    private sealed class Failures
    {
        public int Count;
        public DateTimeOffset WindowStart;
        public DateTimeOffset LockedUntil;
    }

    /// <summary>How long the address must still wait, or null when it may try.</summary>
    public TimeSpan? LockedFor(string clientAddress)
    {
        if (_failures.TryGetValue(clientAddress, out var f))
        {
            lock (f)
            {
                var left = f.LockedUntil - _time.GetUtcNow();
                return left > TimeSpan.Zero ? left : null;
            }
        }
        return null;
    }

    public async Task<MasterPasswordResult> VerifyAsync(string? candidate, string clientAddress, CancellationToken cancellationToken)
    {
        var stored = await StoredAsync(cancellationToken);
        if (stored is null)
        {
            return MasterPasswordResult.Disabled;
        }
        if (LockedFor(clientAddress) is not null)
        {
            return MasterPasswordResult.RateLimited;
        }
        if (candidate is not null && Matches(stored, candidate))
        {
            _failures.TryRemove(clientAddress, out _);
            return MasterPasswordResult.Accepted;
        }
        var failures = _failures.GetOrAdd(clientAddress, _ => new Failures());
        lock (failures)
        {
            var now = _time.GetUtcNow();
            if (now - failures.WindowStart > FailureWindow)
            {
                failures.WindowStart = now;
                failures.Count = 0;
            }
            if (++failures.Count >= MaxFailures)
            {
                failures.LockedUntil = now + LockOut;
                failures.Count = 0;
            }
        }
        return MasterPasswordResult.Rejected;
    }

    /// <summary>The hash stored by a change of the master password, else the configured value, else null.</summary>
    public async Task<string?> StoredAsync(CancellationToken cancellationToken)
    {
        return await management.ReadSettingAsync(SettingKey, cancellationToken) ?? (string.IsNullOrEmpty(configured) ? null : configured);
    }

    /// <summary>Stores a new master password, hashed; it takes precedence over the configuration from now on.</summary>
    public async Task ChangeAsync(string newPassword, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(newPassword))
        {
            throw new ArgumentException("the new master password must not be empty", nameof(newPassword));
        }
        await management.WriteSettingAsync(SettingKey, Hash(newPassword), cancellationToken);
        _verified = null;
    }

    private bool Matches(string stored, string candidate)
    {
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(candidate));
        if (_verified is { } v && v.Stored == stored && CryptographicOperations.FixedTimeEquals(v.CandidateDigest, digest))
        {
            return true;
        }
        var ok = stored.StartsWith(Prefix, StringComparison.Ordinal)
            ? VerifyHash(candidate, stored)
            : CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(stored)), digest);
        if (ok)
        {
            _verified = new Verified(stored, digest);
        }
        return ok;
    }

    /// <summary>passlib's pbkdf2_sha512 format, as Odoo stores its master password.</summary>
    public static string Hash(string password, int rounds = DefaultRounds) => Passwords.Hash(password, rounds);

    /// <summary>Checks a password against a passlib pbkdf2_sha512 hash in constant time; a malformed hash never matches.</summary>
    public static bool VerifyHash(string password, string hash) => Passwords.Verify(password, hash);
}
