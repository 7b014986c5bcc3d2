using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>Deletes captured changes older than the retention and moves the log's coverage start to the cutoff.</summary>
public static class OperationLogRetention
{
    /// <summary>Prunes one tenant database; returns how many change rows went.</summary>
    public static async Task<long> PruneAsync(PooledDatabase dataSource, int retentionDays, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentOutOfRangeException.ThrowIfLessThan(retentionDays, 1);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Coverage moves in the same transaction as the delete: undo and rewind never see a gap they do not know of.
        // Operations whose summary is read from the change rows get it stored first: every part of one statement reads
        // the same snapshot, so the summary still sees the rows the delete removes.
        // Change rows are found through their operation ids, which the log's sequence hands out in time order: every
        // id below the first one logged after the cutoff (or below the next id, if none was) belongs to a change made
        // before that log row's transaction started. The age check then keeps any that is not old enough (a transaction
        // that began before the cutoff and drew its id later waits for the next pass). No index on the change time is
        // kept for this: it cost every captured row more than an hourly pass saves.
        await using var command = new NpgsqlCommand("""
            WITH cutoff AS (
                SELECT c.at, coalesce((SELECT min(l.id) FROM loomworks_ai_operation_log l WHERE l.created_at >= c.at),
                                      (SELECT s.last_value + 1 FROM loomworks_ai_operation_log_id_seq s)) AS below
                FROM (SELECT now() - make_interval(days => $1) AS at) c),
            kept AS (
                UPDATE loomworks_ai_operation_log l
                SET (record_ids, values_before, values_after, change_count) =
                    (SELECT s.record_ids, s.values_before, s.values_after, s.change_count
                       FROM loomworks_operation_summary(l.id, l.model_name) s)
                WHERE l.record_ids IS NULL AND l.id < (SELECT below FROM cutoff)
                  AND EXISTS (SELECT FROM loomworks_change c WHERE c.operation_id = l.id AND c.changed_at < (SELECT at FROM cutoff))
                RETURNING 1),
            pruned AS (
                DELETE FROM loomworks_change
                WHERE (operation_id < (SELECT below FROM cutoff) OR operation_id IS NULL) AND changed_at < (SELECT at FROM cutoff)
                RETURNING 1),
            moved AS (UPDATE loomworks_oplog_coverage SET covered_since = greatest(covered_since, (SELECT at FROM cutoff)) RETURNING 1)
            SELECT (SELECT count(*) FROM pruned), (SELECT count(*) FROM moved), (SELECT count(*) FROM kept)
            """, connection);
        command.Parameters.AddWithValue(retentionDays);
        var pruned = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        await transaction.CommitAsync(cancellationToken);
        return pruned;
    }
}

/// <summary>Prunes every active tenant's change log once an hour (and shortly after start).</summary>
public sealed class OperationLogRetentionService(
    TenantStore tenants, TenantDataSources dataSources, OperationsOptions options, ILogger<OperationLogRetentionService> logger)
    : HourlyTenantJob(tenants, logger, TimeSpan.FromMinutes(1))
{
    protected override string Purpose => "Operation log retention";

    protected override async Task<long> RunForTenantAsync(Tenant tenant, CancellationToken cancellationToken)
    {
        var days = options.RetentionDays;
        var pruned = await OperationLogRetention.PruneAsync(dataSources.For(tenant.DatabaseName), days, cancellationToken);
        if (pruned > 0)
        {
            logger.LogInformation("Pruned {Count} change rows older than {Days} days from {Tenant}", pruned, days, tenant.Subdomain);
        }
        return pruned;
    }
}
