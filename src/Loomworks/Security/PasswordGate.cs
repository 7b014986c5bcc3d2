using System.Security.Cryptography;

namespace Loomworks.Security;

/// <summary>What <see cref="PasswordGate.Check"/> found.</summary>
public enum PasswordVerdict
{
    /// <summary>Neither the password nor a key matched (or the login is unknown); counted as a failure.</summary>
    Wrong,
    /// <summary>The client is cooling down on this database: nothing was checked.</summary>
    CoolingDown,
    /// <summary>The login's password matched.</summary>
    Password,
    /// <summary>One of the given API key hashes matched (<see cref="PasswordCheck.KeyIndex"/>).</summary>
    ApiKey,
}

/// <summary>The verdict of one password check, with the index of the matching API key hash when one matched.</summary>
public readonly record struct PasswordCheck(PasswordVerdict Verdict, int KeyIndex = -1)
{
    public bool Accepted => Verdict is PasswordVerdict.Password or PasswordVerdict.ApiKey;
}

/// <summary>
/// The one gate every password check of a tenant's users goes through (RPC authenticate and execute_kw, web
/// sessions, the tenant pages): the <see cref="LoginCooldown"/> first, then PBKDF2 against the login's stored hash,
/// or against a decoy hash with the same parameters when the login is unknown or has no password, so an unknown
/// login costs the same time as a wrong password and logins cannot be told apart by how long the answer takes.
/// </summary>
public sealed class PasswordGate(LoginCooldown cooldown)
{
    // A hash of a random secret nobody knows, made with the password rounds, so checking against it never succeeds.
    private static readonly Lazy<string> DecoyHash =
        new(() => Passwords.Hash(Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), Passwords.PasswordRounds));

    private long _hashChecks;

    public LoginCooldown Cooldown { get; } = cooldown ?? throw new ArgumentNullException(nameof(cooldown));

    /// <summary>How many secrets went through PBKDF2 here (decoys included): a refused or remembered one adds none.</summary>
    public long HashChecks => Interlocked.Read(ref _hashChecks);

    /// <summary>How long <paramref name="client"/> must still wait before trying on <paramref name="db"/>, or null.</summary>
    public TimeSpan? CoolingFor(string db, string? client) => Cooldown.RemainingWait(db, client);

    /// <summary>
    /// Checks <paramref name="secret"/> against <paramref name="passwordHash"/> (null: unknown login or no password,
    /// checked against the decoy) and then against <paramref name="apiKeyHashes"/>; a miss is counted against the
    /// client's cooldown on <paramref name="db"/>, a match clears it.
    /// </summary>
    public PasswordCheck Check(string db, string? client, string secret, string? passwordHash, IReadOnlyList<string>? apiKeyHashes = null)
    {
        ArgumentNullException.ThrowIfNull(db);
        ArgumentNullException.ThrowIfNull(secret);
        if (Cooldown.IsCooling(db, client))
        {
            return new PasswordCheck(PasswordVerdict.CoolingDown);
        }
        var result = new PasswordCheck(PasswordVerdict.Wrong);
        if (Verify(secret, passwordHash ?? DecoyHash.Value) && passwordHash is not null)
        {
            result = new PasswordCheck(PasswordVerdict.Password);
        }
        else if (apiKeyHashes is not null)
        {
            for (var i = 0; i < apiKeyHashes.Count; i++)
            {
                if (Verify(secret, apiKeyHashes[i]))
                {
                    result = new PasswordCheck(PasswordVerdict.ApiKey, i);
                    break;
                }
            }
        }
        if (result.Accepted)
        {
            Cooldown.Succeeded(db, client);
        }
        else
        {
            Cooldown.Failed(db, client);
        }
        return result;
    }

    private bool Verify(string secret, string hash)
    {
        Interlocked.Increment(ref _hashChecks);
        return Passwords.Verify(secret, hash);
    }
}
