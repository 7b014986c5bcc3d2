using Loomworks.Security;
using System.Security.Cryptography;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// API keys as Odoo makes them: 40 hex characters shown once, stored as an 8-character index plus a PBKDF2 hash, usable
/// wherever a password is.
/// </summary>
public static class ApiKeys
{
    public const int IndexLength = 8;

    public static async Task<string> GenerateAsync(RecordEnvironment env, string name, string? scope, DateTime? expiration,
        CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw OdooException.User("An API key needs a description (name).");
        }
        var key = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
        await using var command = new NpgsqlCommand("""
            INSERT INTO res_users_apikeys
                (name, user_id, scope, expiration_date, index, key, create_uid, create_date, write_uid, write_date)
            VALUES ($1, $2, $3, $4, $5, $6, $2, now() at time zone 'utc', $2, now() at time zone 'utc')
            """, env.Connection, env.Transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.AddWithValue((int)env.Uid);
        command.Parameters.AddWithValue((object?)scope ?? DBNull.Value);
        command.Parameters.AddWithValue(expiration is { } e ? e : DBNull.Value);
        command.Parameters.AddWithValue(key[..IndexLength]);
        command.Parameters.AddWithValue(Passwords.Hash(key, Passwords.ApiKeyRounds));
        await command.ExecuteNonQueryAsync(ct);
        return key;
    }

    /// <summary>Deletes keys of the caller (any key for an administrator).</summary>
    public static async Task<bool> RevokeAsync(RecordEnvironment env, IReadOnlyList<long> ids, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "DELETE FROM res_users_apikeys WHERE id = ANY($1) AND (user_id = $2 OR $3)", env.Connection, env.Transaction);
        command.Parameters.AddWithValue(ids.ToArray());
        command.Parameters.AddWithValue((int)env.Uid);
        command.Parameters.AddWithValue(env.Access.IsAdmin);
        var deleted = await command.ExecuteNonQueryAsync(ct);
        if (deleted != ids.Distinct().Count())
        {
            throw OdooException.Access("You can only revoke your own API keys.");
        }
        return true;
    }

    /// <summary>The user a key belongs to, or null: keys are looked up by index, then checked against their hash.</summary>
    public static async Task<(long Uid, string Hash)?> FindUserAsync(NpgsqlConnection connection, string key, CancellationToken ct)
    {
        if (key.Length < IndexLength)
        {
            return null;
        }
        await using var command = new NpgsqlCommand("""
            SELECT k.user_id, k.key FROM res_users_apikeys k JOIN res_users u ON u.id = k.user_id
            WHERE k.index = $1 AND u.active AND (k.expiration_date IS NULL OR k.expiration_date > now() at time zone 'utc')
            """, connection);
        command.Parameters.AddWithValue(key[..IndexLength]);
        var candidates = new List<(long, string)>();
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                candidates.Add((reader.GetInt32(0), reader.GetString(1)));
            }
        }
        foreach (var (uid, hash) in candidates)
        {
            if (Passwords.Verify(key, hash))
            {
                return (uid, hash);
            }
        }
        return null;
    }
}
