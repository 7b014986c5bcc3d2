using System.Diagnostics;
using System.Text.RegularExpressions;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// Statements on whole databases of one server, run through its maintenance database <paramref name="admin"/>:
/// existence, drop, sessions, renames, connections, grants and settings. <paramref name="evictDatabase"/> closes this
/// process's own pooled connections to a database before its sessions are ended.
/// </summary>
public sealed partial class DatabaseOperations(PooledDatabase admin, Func<string, Task>? evictDatabase = null)
{
    /// <summary>How many renames are tried with <see cref="QuickRenameTimeout"/> before the rename may wait as long as it needs.</summary>
    private const int QuickRenameAttempts = 5;

    /// <summary>Far above a rename's own few milliseconds, well under the 100 ms it sleeps on finding a session.</summary>
    private static readonly TimeSpan QuickRenameTimeout = TimeSpan.FromMilliseconds(20);

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = admin.CreateCommand("SELECT 1 FROM pg_database WHERE datname = $1");
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    /// <summary>Runs a statement that cannot take parameters; names in it are quoted with <see cref="DatabaseAdmin"/>.</summary>
    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Drops the database if it exists, ending its sessions.</summary>
    public Task DropAsync(string name, CancellationToken cancellationToken) =>
        ExecuteAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(name)} WITH (FORCE)", cancellationToken);

    /// <summary>Drops the role if it exists.</summary>
    public Task DropRoleAsync(string role, CancellationToken cancellationToken) =>
        ExecuteAsync($"DROP ROLE IF EXISTS {DatabaseAdmin.QuoteIdentifier(role)}", cancellationToken);

    /// <summary>Lets new sessions into the database, or refuses them (the sessions it has stay).</summary>
    public Task AllowConnectionsAsync(string name, bool allow, CancellationToken cancellationToken) =>
        ExecuteAsync($"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(name)} ALLOW_CONNECTIONS {(allow ? "true" : "false")}",
            cancellationToken);

    /// <summary>Asks every other session on <paramref name="database"/> to end; returns how many there were.</summary>
    public async Task<long> TerminateSessionsAsync(string database, CancellationToken cancellationToken)
    {
        await using var terminate = admin.CreateCommand("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
            """);
        terminate.Parameters.AddWithValue(database);
        return (long)(await terminate.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Ends what can end without failing anyone's work on <paramref name="database"/>: this process's idle pooled
    /// connections, other idle sessions and autovacuum workers. Run before a database is taken away, it lets the slow
    /// closes happen while the database still answers.
    /// </summary>
    public async Task EndIdleSessionsAsync(string database, CancellationToken cancellationToken)
    {
        if (evictDatabase is not null)
        {
            await evictDatabase(database);
        }
        await using var terminate = admin.CreateCommand("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = $1 AND pid <> pg_backend_pid() AND (state = 'idle' OR backend_type = 'autovacuum worker')
            """);
        terminate.Parameters.AddWithValue(database);
        await terminate.ExecuteScalarAsync(cancellationToken);
    }

    /// <summary>
    /// Ends every session on <paramref name="database"/> and waits until they are gone. A rename that still finds one
    /// waits on its own in steps of 100 ms; this wait polls every 2 ms, for at most 5 s, after which the rename's own
    /// wait and the retries of <see cref="RenameAsync(IReadOnlyList{ValueTuple{string, string}}, CancellationToken)"/> take over.
    /// </summary>
    public async Task CloseSessionsAsync(string database, CancellationToken cancellationToken)
    {
        if (evictDatabase is not null)
        {
            await evictDatabase(database);
        }
        var watch = Stopwatch.StartNew();
        while (await TerminateSessionsAsync(database, cancellationToken) > 0 && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(2, cancellationToken);
        }
    }

    /// <summary>Runs a statement that needs <paramref name="database"/> free of sessions, ending them and retrying briefly.</summary>
    public async Task RunWithSessionsEndedAsync(string database, string sql, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            await TerminateSessionsAsync(database, cancellationToken);
            try
            {
                await ExecuteAsync(sql, cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 10)
            {
                await Task.Delay(100 * attempt, cancellationToken);
            }
        }
    }

    public Task RenameAsync(string from, string to, CancellationToken cancellationToken) => RenameAsync([(from, to)], cancellationToken);

    /// <summary>
    /// Renames databases, in order and in one transaction, after closing their sessions; retried, since a session may
    /// slip in between. A backend on its way in or out (a connection refused at startup, an autovacuum worker just
    /// terminated) is not in pg_stat_activity, but the rename counts it and then sleeps 100 ms before looking again:
    /// the first attempts are cut off at <see cref="QuickRenameTimeout"/> and retried instead (all renames roll back together).
    /// </summary>
    public async Task RenameAsync(IReadOnlyList<(string From, string To)> renames, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            foreach (var (from, _) in renames)
            {
                await CloseSessionsAsync(from, cancellationToken);
            }
            try
            {
                await using var connection = await admin.OpenConnectionAsync(cancellationToken);
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                if (attempt < QuickRenameAttempts)
                {
                    await using var timeout = new NpgsqlCommand(
                        $"SET LOCAL statement_timeout = {(int)QuickRenameTimeout.TotalMilliseconds}", connection, transaction);
                    await timeout.ExecuteNonQueryAsync(cancellationToken);
                }
                foreach (var (from, to) in renames)
                {
                    await using var rename = new NpgsqlCommand(
                        $"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(from)} RENAME TO {DatabaseAdmin.QuoteIdentifier(to)}",
                        connection, transaction);
                    await rename.ExecuteNonQueryAsync(cancellationToken);
                }
                await transaction.CommitAsync(cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled && attempt < QuickRenameAttempts)
            {
                // Cut off in the rename's own 100 ms wait: the late session is gone by now, or the next attempt sees it.
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 50)
            {
                await Task.Delay(20, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Gives <paramref name="to"/> the database-level grants (CONNECT, CREATE, TEMPORARY) and the per-database settings
    /// (ALTER DATABASE … SET, for all roles or one) that <paramref name="from"/> has.
    /// </summary>
    public async Task CopyGrantsAndSettingsAsync(string from, string to, CancellationToken cancellationToken)
    {
        var target = DatabaseAdmin.QuoteIdentifier(to);
        var grants = new List<(string Privilege, string? Grantee)>();
        bool hasAcl;
        await using (var acl = admin.CreateCommand("SELECT datacl IS NOT NULL FROM pg_database WHERE datname = $1"))
        {
            acl.Parameters.AddWithValue(from);
            hasAcl = await acl.ExecuteScalarAsync(cancellationToken) is true;
        }
        if (hasAcl)
        {
            await using var command = admin.CreateCommand("""
                SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
                FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1
                """);
            command.Parameters.AddWithValue(from);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                grants.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1)));
            }
            await ExecuteAsync($"REVOKE ALL ON DATABASE {target} FROM PUBLIC", cancellationToken);
            foreach (var (privilege, grantee) in grants.Where(g => g.Privilege is "CONNECT" or "CREATE" or "TEMPORARY"))
            {
                await ExecuteAsync($"GRANT {privilege} ON DATABASE {target} TO " +
                    (grantee is null ? "PUBLIC" : DatabaseAdmin.QuoteIdentifier(grantee)), cancellationToken);
            }
        }
        var settings = new List<(string? Role, string Setting)>();
        await using (var command = admin.CreateCommand("""
            SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1
            """))
        {
            command.Parameters.AddWithValue(from);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                settings.Add((reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetString(1)));
            }
        }
        foreach (var (role, setting) in settings)
        {
            var equals = setting.IndexOf('=', StringComparison.Ordinal);
            var key = setting[..equals];
            if (!SettingName().IsMatch(key))
            {
                continue;
            }
            var inRole = role is null ? "" : $" IN ROLE {DatabaseAdmin.QuoteIdentifier(role)}";
            await ExecuteAsync($"ALTER DATABASE {target}{inRole} SET {key} = {DatabaseAdmin.QuoteLiteral(setting[(equals + 1)..])}",
                cancellationToken);
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_.]{0,62}$")]
    private static partial Regex SettingName();
}
