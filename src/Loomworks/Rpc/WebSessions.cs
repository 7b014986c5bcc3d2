using Loomworks.Postgres;
using System.Buffers.Text;
using System.Security.Cryptography;
using Loomworks.Configuration;
using Loomworks.Records;
using Loomworks.Security;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// The value of a <c>session_id</c> cookie: the tenant database the session was issued for, a dot, and 32 random
/// bytes in base64url. The database part only says where to look; the token alone proves anything.
/// </summary>
public readonly record struct WebSessionCookie(string Database, string Token)
{
    public const string Name = "session_id";
    public const int TokenBytes = 32;
    public const int TokenLength = 43;
    public const int MaxLength = 63 + 1 + TokenLength;

    public static WebSessionCookie Issue(string database) =>
        new(database, Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(TokenBytes)));

    /// <summary>Parses a cookie value; <paramref name="problem"/> says what is wrong with one that is not ours.</summary>
    public static bool TryParse(string? value, out WebSessionCookie cookie, out string problem)
    {
        cookie = default;
        if (string.IsNullOrEmpty(value))
        {
            problem = "no session_id cookie";
            return false;
        }
        if (value.Length > MaxLength)
        {
            problem = $"the session_id cookie is longer than {MaxLength} characters";
            return false;
        }
        var dot = value.LastIndexOf('.');
        var database = dot > 0 ? value[..dot] : "";
        var token = dot > 0 ? value[(dot + 1)..] : "";
        if (database.Length == 0 || !database.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')
            || token.Length != TokenLength || !Base64Url.IsValid(token, out var decoded) || decoded != TokenBytes)
        {
            problem = "the session_id cookie is malformed";
            return false;
        }
        cookie = new WebSessionCookie(database, token);
        problem = "";
        return true;
    }

    /// <summary>What the database keeps instead of the token: its SHA-256 (the token is random, a slow hash adds nothing).</summary>
    public byte[] TokenHash() => SHA256.HashData(Base64Url.DecodeFromChars(Token));

    public override string ToString() => Database + "." + Token;
}

/// <summary>
/// The user behind a live session, and the tenant's <see cref="SecurityStamp"/> as the session check read it: what a
/// page remembers about the user's rights holds while the stamp reads the same.
/// </summary>
public sealed record WebSessionUser(long Uid, string Login, Guid Stamp);

/// <summary>How long sessions live and how often their last use is written down.</summary>
public sealed class WebSessionOptions
{
    /// <summary>A session unused this long is expired (Odoo: 7 days).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Last use is written at most this often per session, so a busy session does not write on every request.</summary>
    public TimeSpan TouchInterval { get; init; } = TimeSpan.FromMinutes(1);

    public static WebSessionOptions From(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new WebSessionOptions { IdleTimeout = TimeSpan.FromDays(settings.GetInt(ConfigKeys.SessionIdleDays)) };
    }
}

/// <summary>
/// Web sessions kept in the tenant database they belong to (<see cref="WebSessionSchema"/>): only the SHA-256 of the
/// cookie's token is stored, with the database name, the uid and a fingerprint of the user's credentials. A session
/// is valid while its user is active, its credentials unchanged, it was used within the idle timeout, and the row
/// was written for this very database (a duplicated or branched database does not inherit its source's sessions).
/// </summary>
public sealed class WebSessionStore(WebSessionOptions options, PasswordGate gate)
{
    public WebSessionOptions Options => options;

    /// <summary>
    /// Checks login and password (API keys are for the API, not for interactive sessions, as in Odoo) and opens a session;
    /// null when they are wrong.
    /// </summary>
    public async Task<(WebSessionCookie Cookie, long Uid)?> LoginAsync(RpcDatabase database, string login, string password,
        string? clientAddress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (string.IsNullOrEmpty(login) || string.IsNullOrEmpty(password))
        {
            return null;
        }
        if (gate.CoolingFor(database.Name, clientAddress) is not null)
        {
            throw OdooException.Denied(LoginCooldown.Message);
        }
        await using var connection = await database.DataSource.OpenConnectionAsync(ct);
        long uid = 0;
        string? hash = null;
        await using (var command = new NpgsqlCommand("SELECT id, password FROM res_users WHERE login = $1 AND active", connection))
        {
            command.Parameters.AddWithValue(login);
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (await reader.ReadAsync(ct))
            {
                uid = reader.GetInt32(0);
                hash = reader.IsDBNull(1) ? null : reader.GetString(1);
            }
        }
        // An unknown login is checked against the gate's decoy, so it takes as long as a wrong password.
        var check = gate.Check(database.Name, clientAddress, password, hash);
        if (check.Verdict == PasswordVerdict.CoolingDown)
        {
            throw OdooException.Denied(LoginCooldown.Message);
        }
        if (!check.Accepted)
        {
            return null;
        }
        var cookie = WebSessionCookie.Issue(database.Name);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var stamp = new NpgsqlBatchCommand("UPDATE res_users SET login_date = now() at time zone 'utc' WHERE id = $1");
            stamp.Parameters.AddWithValue((int)uid);
            batch.BatchCommands.Add(stamp);
            // Expired sessions are swept here rather than by a job: logins are rare next to requests, and the index makes it cheap.
            var sweep = new NpgsqlBatchCommand($"DELETE FROM {WebSessionSchema.Table} WHERE last_seen < now() - $1::interval");
            sweep.Parameters.AddWithValue(options.IdleTimeout);
            batch.BatchCommands.Add(sweep);
            var insert = new NpgsqlBatchCommand($"""
                INSERT INTO {WebSessionSchema.Table} (token_hash, database_name, uid, auth_fingerprint, client_address)
                SELECT $1, $2, u.id, {WebSessionSchema.FingerprintSql}, $3 FROM res_users u WHERE u.id = $4 AND u.active
                """);
            insert.Parameters.AddWithValue(cookie.TokenHash());
            insert.Parameters.AddWithValue(database.Name);
            insert.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Varchar, clientAddress);
            insert.Parameters.AddWithValue((int)uid);
            batch.BatchCommands.Add(insert);
            await batch.ExecuteNonQueryAsync(ct);
            if (insert.RecordsAffected != 1)
            {
                // The user was deactivated between the password check and now.
                return null;
            }
        }
        await transaction.CommitAsync(ct);
        return (cookie, uid);
    }

    /// <summary>The user of a live session in <paramref name="databaseName"/>, or null; <paramref name="touch"/> records the use.</summary>
    public async Task<WebSessionUser?> ResolveAsync(PooledDatabase dataSource, string databaseName, WebSessionCookie cookie, bool touch,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var hash = cookie.TokenHash();
        WebSessionUser user;
        bool stale;
        await using (var command = new NpgsqlCommand($"""
            SELECT s.uid, u.login, s.last_seen < now() - $4::interval, (SELECT stamp FROM {SecurityStamp.Table})
            FROM {WebSessionSchema.Table} s JOIN res_users u ON u.id = s.uid
            WHERE s.token_hash = $1 AND s.database_name = $2 AND u.active
              AND s.auth_fingerprint = {WebSessionSchema.FingerprintSql} AND s.last_seen > now() - $3::interval
            """, connection))
        {
            command.Parameters.AddWithValue(hash);
            command.Parameters.AddWithValue(databaseName);
            command.Parameters.AddWithValue(options.IdleTimeout);
            command.Parameters.AddWithValue(options.TouchInterval);
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                return null;
            }
            user = new WebSessionUser(reader.GetInt32(0), reader.GetString(1), reader.GetGuid(3));
            stale = reader.GetBoolean(2);
        }
        if (touch && stale)
        {
            await using var update = new NpgsqlCommand(
                $"UPDATE {WebSessionSchema.Table} SET last_seen = now() WHERE token_hash = $1", connection);
            update.Parameters.AddWithValue(hash);
            await update.ExecuteNonQueryAsync(ct);
        }
        return user;
    }

    /// <summary>Ends the session; true when it existed.</summary>
    public static async Task<bool> DestroyAsync(RpcDatabase database, WebSessionCookie cookie, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var command = database.DataSource.CreateCommand($"DELETE FROM {WebSessionSchema.Table} WHERE token_hash = $1");
        command.Parameters.AddWithValue(cookie.TokenHash());
        return await command.ExecuteNonQueryAsync(ct) > 0;
    }

    /// <summary>Odoo's session info object (ir.http's session_info) for the session's user.</summary>
    public static async Task<Dictionary<string, object?>> SessionInfoAsync(RpcDatabase database, long uid, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var connection = await database.DataSource.OpenConnectionAsync(ct);
        var info = new Dictionary<string, object?>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand("""
            SELECT u.name, u.login, coalesce(u.lang, p.lang, 'en_US'), coalesce(u.tz, p.tz), u.partner_id, u.company_id,
                   coalesce(p.complete_name, p.name), p.write_date,
                   EXISTS (SELECT 1 FROM res_groups_users_rel r JOIN res_groups g ON g.id = r.gid
                           WHERE r.uid = u.id AND g.xml_id = 'base.group_system'),
                   EXISTS (SELECT 1 FROM res_groups_users_rel r JOIN res_groups g ON g.id = r.gid
                           WHERE r.uid = u.id AND g.xml_id = 'base.group_erp_manager'),
                   EXISTS (SELECT 1 FROM res_groups_users_rel r JOIN res_groups g ON g.id = r.gid
                           WHERE r.uid = u.id AND g.xml_id = 'base.group_user')
            FROM res_users u LEFT JOIN res_partner p ON p.id = u.partner_id WHERE u.id = $1
            """, connection))
        {
            command.Parameters.AddWithValue((int)uid);
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                throw SessionErrors.Expired("the session's user no longer exists");
            }
            var superuser = uid == AccessRights.SuperuserId;
            var isSystem = superuser || reader.GetBoolean(8);
            var lang = reader.GetString(2);
            object? tz = reader.IsDBNull(3) ? false : reader.GetString(3);
            info["uid"] = uid;
            info["is_system"] = isSystem;
            info["is_admin"] = isSystem || reader.GetBoolean(9);
            info["is_public"] = false;
            info["is_internal_user"] = reader.GetBoolean(10);
            info["user_context"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["lang"] = lang, ["tz"] = tz, ["uid"] = uid };
            info["db"] = database.Name;
            info["server_version"] = RpcDispatcher.Version["server_version"];
            info["server_version_info"] = RpcDispatcher.Version["server_version_info"];
            info["name"] = reader.GetString(0);
            info["username"] = reader.GetString(1);
            info["partner_display_name"] = reader.IsDBNull(6) ? false : reader.GetString(6);
            info["partner_write_date"] = reader.IsDBNull(7) ? false : Values.FormatDateTime(reader.GetDateTime(7));
            info["partner_id"] = (long)reader.GetInt32(4);
            info["company_id"] = reader.IsDBNull(5) ? false : reader.GetInt32(5);
            info["web.base.url"] = "";
            info["home_action_id"] = false;
            info["max_file_upload_size"] = 128L * 1024 * 1024;
            info["bundle_params"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["lang"] = lang };
            info["test_mode"] = false;
        }
        var companies = new Dictionary<string, object?>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand("""
            SELECT c.id, c.name, c.sequence, c.parent_id,
                   ARRAY(SELECT k.id FROM res_company k WHERE k.parent_id = c.id ORDER BY k.id)
            FROM res_company c JOIN res_company_users_rel r ON r.cid = c.id
            WHERE r.user_id = $1 ORDER BY c.sequence, c.id
            """, connection))
        {
            command.Parameters.AddWithValue((int)uid);
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var id = reader.GetInt32(0);
                var key = id.ToString(System.Globalization.CultureInfo.InvariantCulture);
                companies[key] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["id"] = (long)id,
                    ["name"] = reader.GetString(1),
                    ["sequence"] = reader.IsDBNull(2) ? 10L : reader.GetInt32(2),
                    ["child_ids"] = reader.GetFieldValue<int[]>(4).Select(i => (object?)(long)i).ToList(),
                    ["parent_id"] = reader.IsDBNull(3) ? false : reader.GetInt32(3),
                };
            }
        }
        info["user_companies"] = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["current_company"] = info["company_id"],
            ["allowed_companies"] = companies,
            ["disallowed_ancestor_companies"] = new Dictionary<string, object?>(StringComparer.Ordinal),
        };
        return info;
    }
}

/// <summary>Odoo's odoo.http.SessionExpiredException, which JSON-RPC answers with error code 100.</summary>
public static class SessionErrors
{
    public const string SessionExpiredName = "odoo.http.SessionExpiredException";

    public static OdooException Expired(string reason) =>
        new(OdooErrorKind.ServerError, $"Session expired ({reason})", SessionExpiredName);

    public static bool IsExpired(OdooException error) => error?.PythonName == SessionExpiredName;
}
