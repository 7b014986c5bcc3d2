using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// Suspend, activate, archive, delete and limit changes of existing tenants. Each change, its audit row and its
/// NOTIFY are one transaction; a state change from a state that does not allow it is refused and names both. This
/// instance's <see cref="TenantCache"/> forgets the tenant before the change returns, so the next request it serves
/// sees the new state without waiting for its own NOTIFY.
/// </summary>
public sealed partial class TenantLifecycle(
    ManagementDatabase management,
    TenantDataSources dataSources,
    TenancyOptions options,
    ITenantDatabaseSetup? schema = null,
    TenantCache? cache = null)
{
    public Task<Tenant> SuspendAsync(string subdomain, string actor, CancellationToken ct, string reason = "") =>
        MoveAsync(subdomain, TenantStates.Suspended, [TenantStates.Active, TenantStates.Suspended], "suspended", reason, actor, ct);

    public Task<Tenant> ActivateAsync(string subdomain, string actor, CancellationToken ct) =>
        MoveAsync(subdomain, TenantStates.Active, [TenantStates.Suspended, TenantStates.Archived, TenantStates.Active], "activated", "",
            actor, ct);

    public Task<Tenant> ArchiveAsync(string subdomain, string actor, CancellationToken ct) =>
        MoveAsync(subdomain, TenantStates.Archived, [TenantStates.Active, TenantStates.Suspended, TenantStates.Archived], "archived", "",
            actor, ct);

    /// <summary>Drops the tenant's database, role and filestore and removes its row; only an archived tenant unless forced.</summary>
    public async Task DeleteAsync(string subdomain, bool force, string actor, CancellationToken ct)
    {
        var tenant = await RequireAsync(subdomain, ct);
        if (tenant.State == TenantStates.Provisioning)
        {
            throw new TenantStateException($"tenant '{subdomain}' is being provisioned; it can be deleted once that ends");
        }
        if (tenant.State != TenantStates.Archived && !force)
        {
            throw new TenantStateException($"tenant '{subdomain}' is {tenant.State}; archive it first or delete with force");
        }
        string? role;
        await using (var command = management.DataSource.CreateCommand("SELECT role_name FROM loomworks_tenant WHERE id = $1"))
        {
            command.Parameters.AddWithValue(tenant.Id);
            role = await command.ExecuteScalarAsync(ct) as string;
        }
        // The row goes first (announced at once), so no instance routes to a database that is about to vanish.
        await using (var connection = await management.DataSource.OpenConnectionAsync(ct))
        await using (var transaction = await connection.BeginTransactionAsync(ct))
        {
            await using var delete = new NpgsqlCommand("DELETE FROM loomworks_tenant WHERE id = $1", connection, transaction);
            delete.Parameters.AddWithValue(tenant.Id);
            await delete.ExecuteNonQueryAsync(ct);
            await TenantEventLog.RecordAsync(connection, tenant.Id, tenant.Subdomain, tenant.DatabaseName, "deleted",
                force ? $"forced from {tenant.State}" : "", actor, ct);
            await transaction.CommitAsync(ct);
        }
        cache?.Evict(tenant.Subdomain, tenant.DatabaseName);
        await dataSources.EvictAsync(tenant.DatabaseName);
        var databases = new DatabaseOperations(dataSources.For("postgres"));
        await databases.DropAsync(tenant.DatabaseName, ct);
        if (role is not null)
        {
            await databases.DropRoleAsync(role, ct);
        }
        var filestore = options.FilestoreOf(tenant.DatabaseName);
        if (Directory.Exists(filestore))
        {
            Directory.Delete(filestore, recursive: true);
        }
    }

    /// <summary>
    /// Makes an existing database (restored or duplicated by the database manager) a tenant like a provisioned one:
    /// brought to the latest tenant schema (a backup may be older than this Loomworks), its own login role that alone
    /// may CONNECT, recorded on its row, announced so every instance evicts.
    /// </summary>
    public async Task AdoptAsync(string databaseName, string actor, CancellationToken ct)
    {
        var role = TenantProvisioner.RoleNameFor(databaseName);
        if (schema is not null)
        {
            await using var tenant = await dataSources.For(databaseName).OpenConnectionAsync(ct);
            await TenantProvisioner.UpgradeSchemaAsync(tenant, schema, ct);
        }
        await TenantProvisioner.GrantRoleAsync(dataSources, databaseName, role, ct);
        // The pooled sessions opened for the grants would keep the database busy for a later rename or drop.
        await dataSources.EvictAsync(databaseName);
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        long? id;
        string subdomain;
        await using (var update = new NpgsqlCommand(
            "UPDATE loomworks_tenant SET role_name = $2, updated_at = now() WHERE database_name = $1 RETURNING id, subdomain",
            connection, transaction))
        {
            update.Parameters.AddWithValue(databaseName);
            update.Parameters.AddWithValue(role);
            await using var reader = await update.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                throw new TenantStateException($"no tenant has the database '{TenantRules.Printable(databaseName)}'", notFound: true);
            }
            (id, subdomain) = (reader.GetInt64(0), reader.GetString(1));
        }
        await TenantEventLog.RecordAsync(connection, id, subdomain, databaseName, "adopted", $"login role {role}", actor, ct);
        await transaction.CommitAsync(ct);
    }

    /// <summary>
    /// Follows a database rename on its tenant row (subdomain = database name, role renamed to match) inside the
    /// caller's transaction; both the old and the new names are announced, so no instance keeps routing the old one.
    /// </summary>
    public static async Task RenameRecordAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string oldName,
        string newName, string actor, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            UPDATE loomworks_tenant
               SET database_name = $2, subdomain = $2, name = CASE WHEN name = $1 THEN $2 ELSE name END,
                   role_name = CASE WHEN role_name IS NULL THEN NULL ELSE $3 END, updated_at = now()
             WHERE database_name = $1
            RETURNING id, subdomain
            """, connection, transaction);
        command.Parameters.AddWithValue(oldName);
        command.Parameters.AddWithValue(newName);
        command.Parameters.AddWithValue(TenantProvisioner.RoleNameFor(newName));
        long? id = null;
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            if (await reader.ReadAsync(ct))
            {
                id = reader.GetInt64(0);
            }
        }
        await TenantEventLog.RecordAsync(connection, id, oldName, oldName, "renamed", $"to {newName}", actor, ct);
        await TenantEventLog.RecordAsync(connection, id, newName, newName, "renamed", $"from {oldName}", actor, ct);
    }

    /// <summary>Renames the login role of a renamed database; grants follow the role. Idempotent for recovery.</summary>
    public async Task RenameRoleAsync(string oldName, string newName, CancellationToken ct)
    {
        var oldRole = TenantProvisioner.RoleNameFor(oldName);
        var newRole = TenantProvisioner.RoleNameFor(newName);
        await using var server = await dataSources.For("postgres").OpenConnectionAsync(ct);
        await using var exists = new NpgsqlCommand(
            "SELECT count(*) FILTER (WHERE rolname = $1), count(*) FILTER (WHERE rolname = $2) FROM pg_roles", server);
        exists.Parameters.AddWithValue(oldRole);
        exists.Parameters.AddWithValue(newRole);
        long oldCount, newCount;
        await using (var reader = await exists.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            (oldCount, newCount) = (reader.GetInt64(0), reader.GetInt64(1));
        }
        if (oldCount == 1 && newCount == 0)
        {
            await using var rename = new NpgsqlCommand(
                $"ALTER ROLE {DatabaseAdmin.QuoteIdentifier(oldRole)} RENAME TO {DatabaseAdmin.QuoteIdentifier(newRole)}", server);
            await rename.ExecuteNonQueryAsync(ct);
        }
    }

    /// <summary>Drops the login role of a database that no longer exists (a dropped or rolled-back one).</summary>
    public async Task DropRoleAsync(string databaseName, CancellationToken ct)
    {
        await new DatabaseOperations(dataSources.For("postgres")).DropRoleAsync(TenantProvisioner.RoleNameFor(databaseName), ct);
    }

    /// <summary>Changes limits, tier, name or subscription end; values left null stay as they are.</summary>
    public async Task<Tenant> SetLimitsAsync(string subdomain, TenantLimitsChange change, string actor, CancellationToken ct)
    {
        TenantRules.Validate(change);
        var tenant = await RequireAsync(subdomain, ct);
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using (var update = new NpgsqlCommand("""
            UPDATE loomworks_tenant SET
                max_users = coalesce($2, max_users),
                max_storage_gb = coalesce($3, max_storage_gb),
                max_ai_operations_daily = coalesce($4, max_ai_operations_daily),
                tier = coalesce($5, tier),
                subscription_expires = CASE WHEN $7 THEN NULL ELSE coalesce($6, subscription_expires) END,
                name = coalesce($8, name),
                updated_at = now()
            WHERE id = $1
            """, connection, transaction))
        {
            update.Parameters.AddWithValue(tenant.Id);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Integer, change.MaxUsers);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Integer, change.MaxStorageGb);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Integer, change.MaxAiOperationsDaily);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, change.Tier);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.TimestampTz, change.SubscriptionExpires);
            update.Parameters.AddWithValue(change.ClearSubscriptionExpires);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, change.Name);
            await update.ExecuteNonQueryAsync(ct);
        }
        await TenantEventLog.RecordAsync(connection, tenant.Id, tenant.Subdomain, tenant.DatabaseName, "limits_changed",
            Describe(change), actor, ct);
        await transaction.CommitAsync(ct);
        cache?.Evict(tenant.Subdomain, tenant.DatabaseName);
        return (await new TenantStore(management).FindBySubdomainAsync(subdomain, ct))!;
    }

    /// <summary>Suspends every active tenant whose subscription has ended; returns their subdomains.</summary>
    public async Task<IReadOnlyList<string>> SuspendExpiredAsync(CancellationToken ct)
    {
        var suspended = new List<string>();
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var rows = new List<(long Id, string Subdomain, string Database)>();
        await using (var update = new NpgsqlCommand("""
            UPDATE loomworks_tenant SET state = 'suspended', updated_at = now()
            WHERE state = 'active' AND subscription_expires IS NOT NULL AND subscription_expires < now()
            RETURNING id, subdomain, database_name
            """, connection, transaction))
        await using (var reader = await update.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
            }
        }
        foreach (var (id, subdomain, database) in rows)
        {
            await TenantEventLog.RecordAsync(connection, id, subdomain, database, "suspended", "subscription expired", "expiry", ct);
            suspended.Add(subdomain);
        }
        await transaction.CommitAsync(ct);
        foreach (var (_, subdomain, database) in rows)
        {
            cache?.Evict(subdomain, database);
        }
        return suspended;
    }

    private async Task<Tenant> MoveAsync(string subdomain, string target, string[] from, string @event, string reason,
        string actor, CancellationToken ct)
    {
        var tenant = await RequireAsync(subdomain, ct);
        await using var connection = await management.DataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using (var update = new NpgsqlCommand(
            "UPDATE loomworks_tenant SET state = $2, updated_at = now() WHERE id = $1 AND state = ANY($3)", connection, transaction))
        {
            update.Parameters.AddWithValue(tenant.Id);
            update.Parameters.AddWithValue(target);
            update.Parameters.AddWithValue(from);
            if (await update.ExecuteNonQueryAsync(ct) != 1)
            {
                var current = await new TenantStore(management).FindBySubdomainAsync(subdomain, ct);
                throw new TenantStateException(
                    $"tenant '{subdomain}' is {current?.State ?? "gone"}; "
                    + $"it can become {target} only from {string.Join(" or ", from.Where(f => f != target))}");
            }
        }
        await TenantEventLog.RecordAsync(connection, tenant.Id, tenant.Subdomain, tenant.DatabaseName, @event, reason, actor, ct);
        await transaction.CommitAsync(ct);
        cache?.Evict(tenant.Subdomain, tenant.DatabaseName);
        return tenant with { State = target };
    }

    private async Task<Tenant> RequireAsync(string subdomain, CancellationToken ct) =>
        await new TenantStore(management).FindBySubdomainAsync(subdomain, ct)
        ?? throw new TenantStateException($"no tenant has the subdomain '{TenantRules.Printable(subdomain)}'", notFound: true);

    private static string Describe(TenantLimitsChange c) => string.Join(", ", new[]
    {
        c.MaxUsers is { } u ? $"max_users={u}" : null,
        c.MaxStorageGb is { } s ? $"max_storage_gb={s}" : null,
        c.MaxAiOperationsDaily is { } a ? $"max_ai_operations_daily={a}" : null,
        c.Tier is { } t ? $"tier={t}" : null,
        c.Name is { } n ? $"name={n}" : null,
        c.ClearSubscriptionExpires ? "subscription_expires=none" : c.SubscriptionExpires is { } e ? $"subscription_expires={e:O}" : null,
    }.Where(x => x is not null));
}
