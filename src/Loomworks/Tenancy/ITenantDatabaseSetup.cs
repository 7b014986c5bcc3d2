using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// The tenant database's schema, owned by the ERP core: its migrations (applied to the template and to every
/// tenant), how a tenant's first administrator is made and how its users are counted for max_users.
/// </summary>
public interface ITenantDatabaseSetup
{
    IReadOnlyList<Migration> Migrations { get; }

    /// <summary>Makes uid 2 the administrator with this login and password hash (passlib pbkdf2-sha512).</summary>
    Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct);

    Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct);
}
