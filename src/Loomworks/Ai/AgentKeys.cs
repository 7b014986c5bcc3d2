using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Security;
using Npgsql;

namespace Loomworks.Ai;

/// <summary>Who an agent's API key belongs to: the user, the key's description and the user's access rights.</summary>
public sealed record AgentKey(long Uid, string Description, AccessRights Rights);

/// <summary>Why a key was not accepted, said in the WWW-Authenticate header and the 401 body.</summary>
public enum AgentKeyRefusal
{
    Missing,
    Invalid,
    CoolingDown,
}

/// <summary>
/// Checks the bearer API keys of MCP requests against the routed tenant's <c>res_users_apikeys</c>. A key found valid is
/// remembered with the tenant's <see cref="SecurityStamp"/>: while the stamp reads the same, nothing that decides the
/// answer has changed (a revoked key, a deactivated user or a changed group moves it), so a call costs no PBKDF2, and
/// the stamp is read with the call's own first statement (see <see cref="AgentCaller.Pending"/>). Unknown keys go through
/// the <see cref="PasswordGate"/>, whose cooldown slows guessing.
/// </summary>
public sealed class AgentKeys(PasswordGate gate)
{
    private const int MaxEntries = 10_000;
    private const int MaxKeyLength = 200;
    private readonly ConcurrentDictionary<(string Db, string Digest), (Guid Stamp, AgentKey Key)> _known = new();

    /// <summary>
    /// A key remembered for this database, answered without a query: the stamp it was found valid under comes with it,
    /// and nothing the key asks for may stand until the stamp is read unchanged. Null when the key is not remembered.
    /// </summary>
    public (AgentKey Key, Guid Stamp)? Remembered(PooledDatabase database, string key)
    {
        ArgumentNullException.ThrowIfNull(database);
        return key.Length is >= ApiKeys.IndexLength and <= MaxKeyLength && _known.TryGetValue((database.Name, Digest(key)), out var known)
            ? (known.Key, known.Stamp)
            : null;
    }

    /// <summary>The key's owner, or the reason it is refused; <paramref name="client"/> is the address the cooldown counts.</summary>
    public async Task<(AgentKey? Key, AgentKeyRefusal Refusal)> CheckAsync(PooledDatabase database, string key, string? client,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (string.IsNullOrEmpty(key))
        {
            return (null, AgentKeyRefusal.Missing);
        }
        if (key.Length is < ApiKeys.IndexLength or > MaxKeyLength)
        {
            return (null, AgentKeyRefusal.Invalid);
        }
        var cacheKey = (database.Name, Digest(key));
        await using var connection = await database.OpenConnectionAsync(ct);
        var stamp = await SecurityStamp.ReadAsync(connection, null, ct);
        if (_known.TryGetValue(cacheKey, out var known) && known.Stamp == stamp)
        {
            return (known.Key, default);
        }
        // Remembered under another stamp: checked afresh below, and not taken from memory again unless found valid.
        _known.TryRemove(cacheKey, out _);
        if (gate.CoolingFor(database.Name, client) is not null)
        {
            return (null, AgentKeyRefusal.CoolingDown);
        }
        var candidates = new List<(long Uid, string Name, string Hash)>();
        await using (var command = new NpgsqlCommand("""
            SELECT k.user_id, k.name, k.key FROM res_users_apikeys k JOIN res_users u ON u.id = k.user_id
            WHERE k.index = $1 AND u.active AND (k.expiration_date IS NULL OR k.expiration_date > now() at time zone 'utc')
            ORDER BY k.id
            """, connection))
        {
            command.Parameters.AddWithValue(key[..ApiKeys.IndexLength]);
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                candidates.Add((reader.GetInt32(0), reader.GetString(1), reader.GetString(2)));
            }
        }
        var check = gate.Check(database.Name, client, key, passwordHash: null, candidates.Select(c => c.Hash).ToList());
        if (!check.Accepted || check.Verdict != PasswordVerdict.ApiKey)
        {
            return (null, check.Verdict == PasswordVerdict.CoolingDown ? AgentKeyRefusal.CoolingDown : AgentKeyRefusal.Invalid);
        }
        var (uid, name, _) = candidates[check.KeyIndex];
        var found = new AgentKey(uid, name, await AccessRights.LoadAsync(connection, null, uid, ct));
        if (_known.Count >= MaxEntries)
        {
            _known.Clear();
        }
        _known[cacheKey] = (stamp, found);
        return (found, default);
    }

    private static string Digest(string secret) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
