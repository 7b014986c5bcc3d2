using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;

namespace Loomworks.Backups;

/// <summary>Duplicate, drop, rename and list: the operations on databases that exist already.</summary>
public sealed partial class DatabaseManager
{
    /// <summary>
    /// Copies <paramref name="source"/> to the new tenant <paramref name="name"/> (template copy, new uuid, files by hard links).
    /// </summary>
    public async Task DuplicateAsync(string source, string name, bool neutralize = false, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(source, options.ManagementDatabase);
        DatabaseNames.Check(name, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(source, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{source}' does not exist");
        }
        await EnsureFreeAsync(name, cancellationToken);
        await using var job = await BeginJobAsync("duplicate", name, source, TenantStates.Provisioning, cancellationToken);
        try
        {
            await CreateDatabaseAsync(name, source, cancellationToken);
            await job.StepAsync("database_created", cancellationToken);
            await using (var connection = await OpenOwnAsync(name, cancellationToken))
            {
                await NewDatabaseUuidAsync(connection, cancellationToken);
                if (neutralize)
                {
                    await NeutralizeAsync(connection, cancellationToken);
                }
            }
            await job.StepAsync("adjusted", cancellationToken);
            fileStore.CopyByHardLinks(source, name);
            await job.StepAsync("files_placed", cancellationToken);
            await tenants.AdoptAsync(name, cancellationToken);
            await job.StepAsync("role_created", cancellationToken);
            await job.FinishAsync(TenantStates.Active, cancellationToken);
        }
        catch (Exception e) when (e is not CrashForTestingException)
        {
            await RollBackCreationAsync(job.Id, name, e.Message, CancellationToken.None);
            throw Wrap(e, "duplicate");
        }
        logger.LogInformation("Duplicated database {Source} to {Database}", source, name);
    }

    /// <summary>Drops a database, its files and its tenant row; false (as Odoo) when there is no such database.</summary>
    public async Task<bool> DropAsync(string name, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(name, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(name, cancellationToken) && !await tenants.IsTakenAsync(name, cancellationToken))
        {
            return false;
        }
        await using var job = await BeginJobAsync("drop", name, null, null, cancellationToken);
        await using (var connection = await management.DataSource.OpenConnectionAsync(cancellationToken))
        {
            await TenantRegistration.SetStateAsync(connection, null, name, TenantStates.Archived, cancellationToken);
        }
        await job.StepAsync("unrouted", cancellationToken);
        await FinishDropAsync(job, name, cancellationToken);
        logger.LogInformation("Dropped database {Database}", name);
        return true;
    }

    private async Task FinishDropAsync(Job job, string name, CancellationToken cancellationToken)
    {
        await dataSources.EvictAsync(name);
        await databases.DropAsync(name, cancellationToken);
        await tenants.DropRoleAsync(name, cancellationToken);
        await job.StepAsync("database_dropped", cancellationToken);
        fileStore.Drop(name);
        await job.StepAsync("files_dropped", cancellationToken);
        await job.FinishAsync(null, cancellationToken);
    }

    /// <summary>Renames a database with its files and tenant row (subdomain = new name).</summary>
    public async Task RenameAsync(string oldName, string newName, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(oldName, options.ManagementDatabase);
        DatabaseNames.Check(newName, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(oldName, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{oldName}' does not exist");
        }
        await EnsureFreeAsync(newName, cancellationToken);
        await using var job = await BeginJobAsync("rename", newName, oldName, null, cancellationToken);
        await FinishRenameAsync(job, oldName, newName, cancellationToken);
        logger.LogInformation("Renamed database {Old} to {New}", oldName, newName);
    }

    private async Task FinishRenameAsync(Job job, string oldName, string newName, CancellationToken cancellationToken)
    {
        if (await DatabaseExistsAsync(oldName, cancellationToken) && !await DatabaseExistsAsync(newName, cancellationToken))
        {
            await databases.RenameAsync(oldName, newName, cancellationToken);
        }
        await tenants.RenameRoleAsync(oldName, newName, cancellationToken);
        await job.StepAsync("database_renamed", cancellationToken);
        fileStore.Rename(oldName, newName);
        await job.StepAsync("files_moved", cancellationToken);
        await job.FinishRenameAsync(oldName, newName, cancellationToken);
    }

    /// <summary>The tenant databases that are served (active or suspended), as Odoo's list: names only.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken = default)
    {
        await using var command = management.DataSource.CreateCommand("""
            SELECT t.database_name FROM loomworks_tenant t JOIN pg_database d ON d.datname = t.database_name
             WHERE t.state IN ('active', 'suspended') ORDER BY 1
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var names = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }
        return names;
    }
}
