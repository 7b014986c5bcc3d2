using Loomworks.Security;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Records;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// Checks logins, passwords and API keys. Stateless RPC sends the password with every call, so a successful check is
/// remembered per (database, uid, secret digest) together with the stored hashes it was checked against: a changed
/// password, a revoked key or a deactivated user is noticed on the next call. Entries never cross databases.
/// </summary>
public sealed class RpcAuthenticator
{
    private const int MaxEntries = 10_000;
    private readonly ConcurrentDictionary<(string Db, long Uid, string Digest), string> _verified = new();
    private readonly ConcurrentDictionary<(string Db, string Digest), (long Uid, string Hash)> _bearer = new();

    /// <summary>The uid for login + password (or API key), or null; never throws for wrong credentials.</summary>
    public async Task<long?> AuthenticateAsync(RpcDatabase database, string login, string password, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(login) || string.IsNullOrEmpty(password))
        {
            return null;
        }
        await using var connection = await database.DataSource.OpenConnectionAsync(ct);
        long uid;
        await using (var command = new NpgsqlCommand("SELECT id FROM res_users WHERE login = $1 AND active", connection))
        {
            command.Parameters.AddWithValue(login);
            if (await command.ExecuteScalarAsync(ct) is not int id)
            {
                return null;
            }
            uid = id;
        }
        if (!await VerifyAsync(connection, database.Name, uid, password, ct))
        {
            return null;
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
        if (string.IsNullOrEmpty(password) || uid is <= 0 or > int.MaxValue || !await VerifyAsync(connection, db, uid, password, ct))
        {
            throw OdooException.Denied();
        }
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

    private async Task<bool> VerifyAsync(NpgsqlConnection connection, string db, long uid, string secret, CancellationToken ct)
    {
        string? passwordHash;
        var keyHashes = new List<string>();
        await using (var command = new NpgsqlCommand("""
            SELECT u.password, k.key FROM res_users u
            LEFT JOIN res_users_apikeys k ON k.user_id = u.id AND k.index = $2
                AND (k.expiration_date IS NULL OR k.expiration_date > now() at time zone 'utc')
            WHERE u.id = $1 AND u.active
            """, connection))
        {
            command.Parameters.AddWithValue((int)uid);
            command.Parameters.AddWithValue(secret.Length >= ApiKeys.IndexLength ? secret[..ApiKeys.IndexLength] : "");
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                return false;
            }
            passwordHash = reader.IsDBNull(0) ? null : reader.GetString(0);
            do
            {
                if (!reader.IsDBNull(1))
                {
                    keyHashes.Add(reader.GetString(1));
                }
            }
            while (await reader.ReadAsync(ct));
        }
        var fingerprint = passwordHash + "|" + string.Join("|", keyHashes);
        var cacheKey = (db, uid, Digest(secret));
        if (_verified.TryGetValue(cacheKey, out var known) && known == fingerprint)
        {
            return true;
        }
        var ok = Passwords.Verify(secret, passwordHash) || keyHashes.Any(h => Passwords.Verify(secret, h));
        if (ok)
        {
            Remember(_verified, cacheKey, fingerprint);
        }
        return ok;
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
