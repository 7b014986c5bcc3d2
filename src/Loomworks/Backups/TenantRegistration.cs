using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// The tenant rows the database manager writes for the databases it creates, drops and renames (name = subdomain =
/// database name). One small class so that it can later defer to Tenancy's provisioner.
/// </summary>
public sealed class TenantRegistration(ManagementDatabase management)
{
#pragma warning disable CA1822 // Instance members on purpose: this class is to be replaced by Tenancy's provisioner, which has state.
    /// <summary>Adds the row in <paramref name="state"/> inside <paramref name="transaction"/>; a taken name is AlreadyExists.</summary>
    public async Task ReserveAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, string state,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES ($1, $1, $1, $2)", connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.AddWithValue(state);
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists, $"a tenant named '{name}' already exists");
        }
    }

    public async Task SetStateAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, string state,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE loomworks_tenant SET state = $2, updated_at = now() WHERE database_name = $1", connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.AddWithValue(state);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Removes the row of a database; with <paramref name="onlyInState"/>, only when it is still in that state.</summary>
    public async Task UnregisterAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name,
        string? onlyInState, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "DELETE FROM loomworks_tenant WHERE database_name = $1 AND ($2::text IS NULL OR state = $2)", connection, transaction);
        command.Parameters.AddWithValue(name);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)onlyInState ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Follows a database rename; a tenant whose display name was its database name takes the new one.</summary>
    public async Task RenameAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string oldName, string newName,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            UPDATE loomworks_tenant
               SET database_name = $2, subdomain = $2, name = CASE WHEN name = $1 THEN $2 ELSE name END, updated_at = now()
             WHERE database_name = $1
            """, connection, transaction);
        command.Parameters.AddWithValue(oldName);
        command.Parameters.AddWithValue(newName);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

#pragma warning restore CA1822

    public async Task<bool> IsTakenAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = management.DataSource.CreateCommand(
            "SELECT 1 FROM loomworks_tenant WHERE database_name = $1 OR subdomain = $1");
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }
}
