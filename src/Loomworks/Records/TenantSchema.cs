using Loomworks.Security;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// The schema of a tenant database: the tables of <see cref="ModelRegistry"/> with Odoo's table and column names,
/// seeded with the countries, the company, the groups and their access rights, OdooBot (uid 1) and the admin (uid 2).
/// Tenant migrations use versions 1000–1999 for the ERP core.
/// </summary>
public static class TenantSchema
{
    public const string SystemGroup = "base.group_system";
    public const string UserGroup = "base.group_user";
    public const string ReadOnlyGroup = "loomworks.group_readonly";

    /// <summary>Records/Migrations: the tables, the countries, the company, groups, access rights, OdooBot and the admin,
    /// the security stamp and the web sessions.</summary>
    public static IReadOnlyList<Migration> All { get; } = MigrationFiles.Load("Records/Migrations");

    public static async Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenantDatabase);
        ArgumentException.ThrowIfNullOrWhiteSpace(login);
        if (Passwords.HashProblem(nameof(passwordHash), passwordHash, minimumRounds: 1) is { } problem)
        {
            throw new ArgumentException(problem, nameof(passwordHash));
        }
        await using var transaction = await tenantDatabase.BeginTransactionAsync(ct);
        // The admin is uid 2 as in Odoo: integrations written for Odoo sometimes assume it.
        await using (var command = new NpgsqlCommand("""
            UPDATE res_users SET login = $1, password = $2, active = true, write_date = now() at time zone 'utc',
                email = CASE WHEN $1 LIKE '%@%' THEN $1 ELSE email END
            WHERE id = 2
            """, tenantDatabase, transaction))
        {
            command.Parameters.AddWithValue(login);
            command.Parameters.AddWithValue(passwordHash);
            if (await command.ExecuteNonQueryAsync(ct) != 1)
            {
                throw new InvalidOperationException("the tenant schema has no admin user (uid 2); apply the migrations first");
            }
        }
        await using (var command = new NpgsqlCommand(
            "UPDATE res_partner SET email = $1 WHERE id = 3 AND $1 LIKE '%@%'", tenantDatabase, transaction))
        {
            command.Parameters.AddWithValue(login);
            await command.ExecuteNonQueryAsync(ct);
        }
        await transaction.CommitAsync(ct);
    }

    /// <summary>True when an active user has this login and password (not an API key: keys are for the API).</summary>
    public static async Task<bool> CheckPasswordAsync(NpgsqlConnection tenantDatabase, string login, string password, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT password FROM res_users WHERE login = $1 AND active", tenantDatabase);
        command.Parameters.AddWithValue(login);
        return await command.ExecuteScalarAsync(ct) is string hash && Passwords.Verify(password, hash);
    }

    public static async Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM res_users WHERE active AND NOT share AND password IS NOT NULL", tenantDatabase);
        return (int)(long)(await command.ExecuteScalarAsync(ct))!;
    }
}
