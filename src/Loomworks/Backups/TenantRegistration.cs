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
        await using var command = new NpgsqlCommand("""
            INSERT INTO loomworks_tenant (name, subdomain, database_name, state, role_name) VALUES ($1, $1, $1, $2, $3) RETURNING id
            """, connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.AddWithValue(state);
        command.Parameters.AddWithValue(TenantProvisioner.RoleNameFor(name));
        long id;
        try
        {
            id = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists, $"a tenant named '{name}' already exists");
        }
        await TenantEventLog.RecordAsync(connection, id, name, name, state, "", Actor, cancellationToken);
    }

    /// <summary>Gives a restored or duplicated database its own login role, as provisioning does.</summary>
    public Task AdoptAsync(string name, CancellationToken cancellationToken) => lifecycle.AdoptAsync(name, Actor, cancellationToken);

    public static async Task SetStateAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, string state,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE loomworks_tenant SET state = $2, updated_at = now() WHERE database_name = $1 RETURNING id, subdomain", connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.AddWithValue(state);
        await RecordIfChangedAsync(command, name, state, "", cancellationToken);
    }

    /// <summary>Removes the row of a database; with <paramref name="onlyInState"/>, only when it is still in that state.</summary>
    public static async Task UnregisterAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name,
        string? onlyInState, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "DELETE FROM loomworks_tenant WHERE database_name = $1 AND ($2::text IS NULL OR state = $2) RETURNING id, subdomain",
            connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)onlyInState ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await RecordIfChangedAsync(command, name, "deleted", "forced", cancellationToken);
    }

    /// <summary>Runs a statement returning (id, subdomain) of the row it changed and, if it changed one, audits and announces it.</summary>
    private static async Task RecordIfChangedAsync(NpgsqlCommand command, string name, string @event, string detail,
        CancellationToken cancellationToken)
    {
        long? id = null;
        var subdomain = name;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken))
            {
                (id, subdomain) = (reader.GetInt64(0), reader.GetString(1));
            }
        }
        if (id is not null)
        {
            await TenantEventLog.RecordAsync(command.Connection!, id, subdomain, name, @event, detail, Actor, cancellationToken);
        }
    }

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
