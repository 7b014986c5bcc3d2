using Loomworks.Security;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Records;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// Checks logins, passwords and API keys, and hands out each user's access rights. Stateless RPC sends the password
/// with every call, so a successful check is remembered per (database, uid, secret digest) together with the
/// database's <see cref="SecurityStamp"/> and the stored hashes it was checked against: while the stamp reads the same
/// nothing that decides the answer has changed and the call needs no query at all; when it differs the hashes are
/// read again and PBKDF2 runs only if they changed. A changed password, a revoked or expired key, a deactivated user
/// or a removed group is therefore seen on the very next call. Entries never cross databases. Secrets that need
/// checking go through the <see cref="PasswordGate"/> (the cooldown, and the same PBKDF2 work for an unknown login or
/// uid as for a known one): a remembered one does not, so an integration that already holds a valid key keeps working
/// while its address is cooling down.
/// </summary>
public sealed class RpcAuthenticator(PasswordGate gate, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    private const int MaxEntries = 10_000;
    private readonly ConcurrentDictionary<(string Db, long Uid, string Digest), Verified> _verified = new();
    private readonly ConcurrentDictionary<(string Db, long Uid), (Guid Stamp, AccessRights Rights)> _rights = new();
    private readonly ConcurrentDictionary<(string Db, string Digest), (long Uid, string Hash)> _bearer = new();

    /// <summary>A secret found valid: under which stamp, against which stored hashes, and until when (an expiring key).</summary>
    private sealed record Verified(Guid Stamp, string Fingerprint, DateTime? ValidUntilUtc);

    /// <summary>How many times a secret went through PBKDF2 at the gate: a call with a remembered secret must not add one.</summary>
    internal long HashChecks => gate.HashChecks;

    /// <summary>
    /// The uid for login + password (or API key), or null; never throws for wrong credentials. While
    /// <paramref name="client"/> is cooling down on this database the answer is null without a check, as Odoo's
    /// <c>common.authenticate</c> answers False then.
    /// </summary>
    public async Task<long?> AuthenticateAsync(RpcDatabase database, string login, string password, string? client, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(login) || string.IsNullOrEmpty(password))
        {
            return null;
        }
        ArgumentNullException.ThrowIfNull(database);
        if (gate.CoolingFor(database.Name, client) is not null)
        {
            return null;
        }
        await using var connection = await database.DataSource.OpenConnectionAsync(ct);
        long uid;
        // One snapshot for the stamp and the hashes, so a check is never remembered under a stamp it was not made under.
        await using (var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct))
        {
            await using (var command = new NpgsqlCommand("SELECT id FROM res_users WHERE login = $1 AND active", connection, transaction))
            {
                command.Parameters.AddWithValue(login);
                if (await command.ExecuteScalarAsync(ct) is not int id)
                {
                    gate.Check(database.Name, client, password, passwordHash: null);
                    return null;
                }
                uid = id;
            }
            var stamp = await SecurityStamp.ReadAsync(connection, transaction, ct);
            if (!(await VerifyAsync(connection, transaction, (database.Name, uid, Digest(password)), password, stamp, client, ct)).Accepted)
            {
                return null;
            }
            await transaction.CommitAsync(ct);
        }
        await using (var update = new NpgsqlCommand("UPDATE res_users SET login_date = now() at time zone 'utc' WHERE id = $1", connection))
        {
            update.Parameters.AddWithValue((int)uid);
            await update.ExecuteNonQueryAsync(ct);
        }
        return uid;
    }

    /// <summary>Raises AccessDenied unless <paramref name="password"/> (or an API key) is valid for <paramref name="uid"/>.</summary>
    public async Task CheckAsync(NpgsqlConnection connection, string db, long uid, string? password, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(connection);
        // No transaction of its own (the caller may be in one): the stamp is read first, so a check made on hashes
        // newer than it is remembered under a stamp that no longer holds and is simply made again.
        var stamp = await SecurityStamp.ReadAsync(connection, null, ct);
        await CheckAsync(connection, null, db, uid, password, stamp, null, ct);
    }

    /// <summary>
    /// As above inside the caller's transaction, which read <paramref name="stamp"/>: a check remembered under the same
    /// stamp costs no query. A secret that must be checked while <paramref name="client"/> is cooling down is refused
    /// with Odoo's cooldown message.
    /// </summary>
    public async Task CheckAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string db, long uid, string? password,
        Guid stamp, string? client, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(password) || uid is <= 0 or > int.MaxValue)
        {
            throw OdooException.Denied();
        }
        var key = (db, uid, Digest(password));
        if (_verified.TryGetValue(key, out var known) && known.Stamp == stamp
            && (known.ValidUntilUtc is not { } until || until > _time.GetUtcNow().UtcDateTime))
        {
            return;
        }
        var check = gate.CoolingFor(db, client) is null
            ? await VerifyAsync(connection, transaction, key, password, stamp, client, ct)
            : new PasswordCheck(PasswordVerdict.CoolingDown);
        if (check.Verdict == PasswordVerdict.CoolingDown)
        {
            throw OdooException.Denied(LoginCooldown.Message);
        }
        if (!check.Accepted)
        {
            throw OdooException.Denied();
        }
    }

    /// <summary>
    /// The stamp and access rights under which <paramref name="password"/> was last found valid for <paramref name="uid"/>,
    /// when the check and the rights are both remembered under the same stamp; null otherwise. A read-only call may then
    /// run before the stamp is read: its answer stands if the stamp it finds is this one (see <see cref="PendingStampCheck"/>).
    /// </summary>
    public RememberedCheck? Remembered(string db, long uid, string? password)
    {
        if (string.IsNullOrEmpty(password) || uid is <= 0 or > int.MaxValue)
        {
            return null;
        }
        return _verified.TryGetValue((db, uid, Digest(password)), out var known)
            && (known.ValidUntilUtc is not { } until || until > _time.GetUtcNow().UtcDateTime)
            && _rights.TryGetValue((db, uid), out var rights) && rights.Stamp == known.Stamp
            ? new RememberedCheck(known.Stamp, rights.Rights)
            : null;
    }

    /// <summary>
    /// The access rights of <paramref name="uid"/>, loaded in the caller's transaction unless already loaded under the
    /// same <paramref name="stamp"/>.
    /// </summary>
    public async Task<AccessRights> AccessAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string db, long uid,
        Guid stamp, CancellationToken ct)
    {
        if (_rights.TryGetValue((db, uid), out var known) && known.Stamp == stamp)
        {
            return known.Rights;
        }
        var rights = await AccessRights.LoadAsync(connection, transaction, uid, ct);
        Remember(_rights, (db, uid), (stamp, rights));
        return rights;
    }

    /// <summary>The uid owning a bearer API key in this database, or AccessDenied.</summary>
    public async Task<long> CheckBearerAsync(NpgsqlConnection connection, string db, string key, CancellationToken ct)
    {
        var digest = Digest(key);
        if (_bearer.TryGetValue((db, digest), out var known) && await StillValidAsync(connection, known.Uid, known.Hash, ct))
        {
            return known.Uid;
        }
        var found = await ApiKeys.FindUserAsync(connection, key, ct) ?? throw OdooException.Denied("Invalid API key");
        Remember(_bearer, (db, digest), found);
        return found.Uid;
    }

    private static async Task<bool> StillValidAsync(NpgsqlConnection connection, long uid, string hash, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            SELECT 1 FROM res_users_apikeys k JOIN res_users u ON u.id = k.user_id
            WHERE k.user_id = $1 AND k.key = $2 AND u.active AND (k.expiration_date IS NULL OR k.expiration_date > now() at time zone 'utc')
            """, connection);
        command.Parameters.AddWithValue((int)uid);
        command.Parameters.AddWithValue(hash);
        return await command.ExecuteScalarAsync(ct) is not null;
    }

    private async Task<PasswordCheck> VerifyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        (string Db, long Uid, string Digest) cacheKey, string secret, Guid stamp, string? client, CancellationToken ct)
    {
        string? passwordHash;
        var keys = new List<(string Hash, DateTime? Expires)>();
        await using (var command = new NpgsqlCommand("""
            SELECT u.password, k.key, k.expiration_date FROM res_users u
            LEFT JOIN res_users_apikeys k ON k.user_id = u.id AND k.index = $2
                AND (k.expiration_date IS NULL OR k.expiration_date > now() at time zone 'utc')
            WHERE u.id = $1 AND u.active
            ORDER BY k.id
            """, connection, transaction))
        {
            command.Parameters.AddWithValue((int)cacheKey.Uid);
            command.Parameters.AddWithValue(secret.Length >= ApiKeys.IndexLength ? secret[..ApiKeys.IndexLength] : "");
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                return gate.Check(cacheKey.Db, client, secret, passwordHash: null);
            }
            passwordHash = reader.IsDBNull(0) ? null : reader.GetString(0);
            do
            {
                if (!reader.IsDBNull(1))
                {
                    keys.Add((reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetDateTime(2)));
                }
            }
            while (await reader.ReadAsync(ct));
        }
        var fingerprint = passwordHash + "|" + string.Join("|", keys.Select(k => k.Hash + "@" + k.Expires?.Ticks));
        if (_verified.TryGetValue(cacheKey, out var known) && known.Fingerprint == fingerprint
            && (known.ValidUntilUtc is not { } until || until > _time.GetUtcNow().UtcDateTime))
        {
            Remember(_verified, cacheKey, known with { Stamp = stamp });
            gate.Cooldown.Succeeded(cacheKey.Db, client);
            return new PasswordCheck(PasswordVerdict.Password);
        }
        // PBKDF2 runs here only: for a secret never seen with these hashes, or a wrong one.
        var check = gate.Check(cacheKey.Db, client, secret, passwordHash, keys.Select(k => k.Hash).ToList());
        if (check.Accepted)
        {
            var validUntil = check.Verdict == PasswordVerdict.ApiKey ? keys[check.KeyIndex].Expires : null;
            Remember(_verified, cacheKey, new Verified(stamp, fingerprint, validUntil));
        }
        return check;
    }

    private static void Remember<TKey, TValue>(ConcurrentDictionary<TKey, TValue> cache, TKey key, TValue value) where TKey : notnull
    {
        if (cache.Count >= MaxEntries)
        {
            cache.Clear();
        }
        cache[key] = value;
    }

    private static string Digest(string secret) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}

/// <summary>A credential check and access rights remembered under the same security stamp.</summary>
public sealed record RememberedCheck(Guid Stamp, AccessRights Rights);
