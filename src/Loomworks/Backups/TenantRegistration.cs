using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// How the database manager's databases become and stop being tenants (name = subdomain = database name), through
/// Tenancy's code: rows with their login role, audit events and the NOTIFY that evicts every instance's cache.
/// </summary>
public sealed class TenantRegistration(ManagementDatabase management, TenantLifecycle lifecycle)
{
    private const string Actor = "database manager";

    /// <summary>Adds the row in <paramref name="state"/> inside <paramref name="transaction"/>; a taken name is AlreadyExists.</summary>
    public static async Task ReserveAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, string state,
        CancellationToken cancellationToken)
    {
        try
        {
            await TenantLifecycle.InsertAsync(connection, transaction,
                new NewTenantRow(name, name, name, state, TenantProvisioner.RoleNameFor(name)), "", Actor, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists, $"a tenant named '{name}' already exists");
        }
    }

    /// <summary>Gives a restored or duplicated database its own login role, as provisioning does.</summary>
    public Task AdoptAsync(string name, CancellationToken cancellationToken) => lifecycle.AdoptAsync(name, Actor, cancellationToken);

    public static Task SetStateAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, string state,
        CancellationToken cancellationToken) =>
        TenantLifecycle.SetStateOfDatabaseAsync(connection, transaction, name, state, null, state, "", Actor, cancellationToken);

    /// <summary>Removes the row of a database; with <paramref name="onlyInState"/>, only when it is still in that state.</summary>
    public static Task UnregisterAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name,
        string? onlyInState, CancellationToken cancellationToken) =>
        TenantLifecycle.RemoveDatabaseAsync(connection, transaction, name, onlyInState, "deleted", "forced", Actor, cancellationToken);

    /// <summary>Drops the login role of a database that is gone.</summary>
    public Task DropRoleAsync(string name, CancellationToken cancellationToken) => lifecycle.DropRoleAsync(name, cancellationToken);

    /// <summary>Follows a database rename: the row (subdomain = new name) in the caller's transaction.</summary>
    public static Task RenameAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string oldName, string newName,
        CancellationToken cancellationToken) =>
        TenantLifecycle.RenameRecordAsync(connection, transaction, oldName, newName, Actor, cancellationToken);

    /// <summary>Renames the login role with its database.</summary>
    public Task RenameRoleAsync(string oldName, string newName, CancellationToken cancellationToken) =>
        lifecycle.RenameRoleAsync(oldName, newName, cancellationToken);

    public async Task<bool> IsTakenAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = management.DataSource.CreateCommand(
            "SELECT 1 FROM loomworks_tenant WHERE database_name = $1 OR subdomain = $1");
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }
}
