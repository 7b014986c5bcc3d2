using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tenancy;

/// <summary>The answer to a master password check.</summary>
public enum MasterPasswordResult
{
    Accepted,
    Rejected,
    /// <summary>No admin_passwd is configured: everything that needs it stays off.</summary>
    Disabled,
    /// <summary>Too many recent failures from this client address, or from everyone; try again after the lock-out.</summary>
    RateLimited,
}

/// <summary>
/// The master password (admin_passwd): plain or passlib pbkdf2_sha512 in the configuration, or a hash stored in
/// loomworks_settings by a later change, which wins. Failures are counted per client address and locked out, and
/// across all addresses under a global ceiling, so guesses spread over many addresses are slowed down too. A request
/// without credentials is only told to send them: it is not a failure.
/// </summary>
public sealed class MasterPassword(ManagementDatabase management, string? configured, TimeProvider? time = null,
    ILogger<MasterPassword>? logger = null)
{
    public const string SettingKey = "admin_passwd";
    public const int DefaultRounds = 600_000;
    public const int MaxFailures = 5;
    public static readonly TimeSpan FailureWindow = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan LockOut = TimeSpan.FromMinutes(1);

    /// <summary>Failures from all addresses together within <see cref="FailureWindow"/> that lock everyone out.</summary>
    public const int MaxGlobalFailures = 50;
    public static readonly TimeSpan GlobalLockOut = TimeSpan.FromMinutes(1);
    private const string Prefix = "$pbkdf2-sha512$";

    private readonly FailureCounter<string> _failures = new(MaxFailures, LockOut, FailureWindow, clearOnLockOut: true, time);
    // One key for all addresses together.
    private readonly FailureCounter<string> _global = new(MaxGlobalFailures, GlobalLockOut, FailureWindow, clearOnLockOut: true, time);
    // A verified candidate is remembered by its SHA-256 so each admin call does not pay 600,000 PBKDF2 rounds.
    private volatile Verified? _verified;
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;

    private sealed record Verified(string Stored, byte[] CandidateDigest);

    /// <summary>How long the address must still wait, or null when it may try.</summary>
    public TimeSpan? LockedFor(string clientAddress) =>
        (_global.LockedFor(""), _failures.LockedFor(clientAddress)) switch
        {
            ({ } all, { } one) => all > one ? all : one,
            (var all, var one) => all ?? one,
        };

    /// <summary>The answer to a request that sent no credentials at all: uncounted, so it locks nobody out.</summary>
    public async Task<MasterPasswordResult> WithoutCredentialsAsync(string clientAddress, CancellationToken cancellationToken)
    {
        if (await StoredAsync(cancellationToken) is null)
        {
            return MasterPasswordResult.Disabled;
        }
        return LockedFor(clientAddress) is null ? MasterPasswordResult.Rejected : MasterPasswordResult.RateLimited;
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
            _failures.Clear(clientAddress);
            return MasterPasswordResult.Accepted;
        }
        _failures.Fail(clientAddress);
        if (_global.Fail(""))
        {
            _logger.LogWarning("{Count} wrong master passwords within {Window} s from all addresses: the master password " +
                "(admin API, database manager) is refused to everyone for {LockOut} s", MaxGlobalFailures, FailureWindow.TotalSeconds,
                GlobalLockOut.TotalSeconds);
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
