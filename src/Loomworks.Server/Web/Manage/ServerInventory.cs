using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Tenancy;

namespace Loomworks.Server.Web.Manage;

/// <summary>One tenant as the database manager and the operator console show it.</summary>
public sealed record TenantRow(Tenant Tenant, long StorageBytes, int ActiveUsers, int AiOperationsToday, DateTimeOffset? LastSnapshot);

/// <summary>A provisioning, database-manager or restore job.</summary>
public sealed record JobRow(string Kind, string Database, string Step, string State, int? Progress, string? Error,
    DateTimeOffset UpdatedAt);

/// <summary>
/// What the server-wide pages read: every tenant with its storage, users, AI operations today and last ready snapshot,
/// and the latest jobs. Reads only; every change goes through Tenancy, the database manager or the restore service.
/// </summary>
public sealed class ServerInventory(TenantStore tenants, TenantLimits limits, AiOperationQuota quota,
    TenantDataSources dataSources, ManagementDatabase management, ITenantDatabaseSetup setup)
{
    public const int JobCount = 20;

    public async Task<IReadOnlyList<TenantRow>> TenantsAsync(CancellationToken ct)
    {
        var snapshots = await LastSnapshotsAsync(ct);
        var rows = new List<TenantRow>();
        foreach (var tenant in await tenants.ListAsync(ct))
        {
            var served = tenant.State is TenantStates.Active or TenantStates.Suspended;
            rows.Add(new TenantRow(tenant,
                served ? await limits.StorageBytesAsync(tenant, ct) : 0,
                served ? await ActiveUsersAsync(tenant, ct) : 0,
                (await quota.UsageAsync(tenant, ct)).Used,
                snapshots.TryGetValue(tenant.Id, out var last) ? last : null));
        }
        return rows;
    }

    /// <summary>The latest jobs of every kind, newest first; running ones first of all.</summary>
    public async Task<IReadOnlyList<JobRow>> JobsAsync(CancellationToken ct)
    {
        await using var command = management.DataSource.CreateCommand($"""
            SELECT kind, database_name, step, state, progress, error, updated_at FROM (
                SELECT 'provision' AS kind, database_name, step, state, NULL::int AS progress, error, updated_at
                  FROM loomworks_tenant_job
                UNION ALL
                SELECT kind, database_name, step, state, NULL, error, updated_at FROM loomworks_db_job
                UNION ALL
                SELECT 'point-in-time restore', target_database, step_name, state, progress, error, updated_at
                  FROM loomworks_restore_job) jobs
             ORDER BY state IN ('running', 'undoing') DESC, updated_at DESC LIMIT {JobCount}
            """);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var jobs = new List<JobRow>();
        while (await reader.ReadAsync(ct))
        {
            jobs.Add(new JobRow(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.GetFieldValue<DateTimeOffset>(6)));
        }
        return jobs;
    }

    private async Task<Dictionary<long, DateTimeOffset>> LastSnapshotsAsync(CancellationToken ct)
    {
        await using var command = management.DataSource.CreateCommand(
            "SELECT tenant_id, max(created_at) FROM loomworks_snapshot WHERE state = 'ready' GROUP BY tenant_id");
        await using var reader = await command.ExecuteReaderAsync(ct);
        var last = new Dictionary<long, DateTimeOffset>();
        while (await reader.ReadAsync(ct))
        {
            last[reader.GetInt64(0)] = reader.GetFieldValue<DateTimeOffset>(1);
        }
        return last;
    }

    private async Task<int> ActiveUsersAsync(Tenant tenant, CancellationToken ct)
    {
        try
        {
            await using var connection = await dataSources.For(tenant.DatabaseName).OpenConnectionAsync(ct);
            return await setup.CountUsersAsync(connection, ct);
        }
        catch (Npgsql.NpgsqlException)
        {
            // A database being swapped by a restore answers a moment later; the page shows no count rather than fail.
            return -1;
        }
    }

    /// <summary>Bytes as people read them: 1.5 MB, 230 kB.</summary>
    public static string Size(long bytes) => bytes switch
    {
        < 1000 => bytes.ToString(CultureInfo.InvariantCulture) + " B",
        < 1_000_000 => (bytes / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + " kB",
        < 1_000_000_000 => (bytes / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + " MB",
        _ => (bytes / 1e9).ToString("0.##", CultureInfo.InvariantCulture) + " GB",
    };

    public static string When(DateTimeOffset? at) =>
        at?.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture) ?? "none";
}
