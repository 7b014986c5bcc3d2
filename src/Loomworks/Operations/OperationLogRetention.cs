using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>Deletes captured changes older than the retention and moves the log's coverage start to the cutoff.</summary>
public static class OperationLogRetention
{
    /// <summary>Prunes one tenant database; returns how many change rows went.</summary>
    public static async Task<long> PruneAsync(NpgsqlDataSource dataSource, int retentionDays, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentOutOfRangeException.ThrowIfLessThan(retentionDays, 1);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Coverage moves in the same transaction as the delete: undo and rewind never see a gap they do not know of.
        await using var command = new NpgsqlCommand("""
            WITH cutoff AS (SELECT now() - make_interval(days => $1) AS at),
            pruned AS (DELETE FROM loomworks_change WHERE changed_at < (SELECT at FROM cutoff) RETURNING 1),
            moved AS (UPDATE loomworks_oplog_coverage SET covered_since = greatest(covered_since, (SELECT at FROM cutoff)) RETURNING 1)
            SELECT (SELECT count(*) FROM pruned), (SELECT count(*) FROM moved)
            """, connection);
        command.Parameters.AddWithValue(retentionDays);
        var pruned = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        await transaction.CommitAsync(cancellationToken);
        return pruned;
    }
}

/// <summary>Prunes every active tenant's change log once an hour (and shortly after start).</summary>
public sealed class OperationLogRetentionService(
    TenantStore tenants, TenantDataSources dataSources, LoomworksSettings settings, ILogger<OperationLogRetentionService> logger)
    : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            await Task.Delay(TimeSpan.FromMinutes(1), stoppingToken);
            do
            {
                await PruneAllAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass over the active tenants; a tenant that fails is logged and the others still pruned.</summary>
    public async Task PruneAllAsync(CancellationToken cancellationToken)
    {
        var days = settings.GetInt(ConfigKeys.OplogRetentionDays);
        IReadOnlyList<Tenant> all;
        try
        {
            all = await tenants.ListAsync(cancellationToken);
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning("Operation log retention skipped: the management database did not answer ({Message})", e.Message);
            return;
        }
        foreach (var tenant in all.Where(t => t.State == TenantStates.Active))
        {
            try
            {
                var pruned = await OperationLogRetention.PruneAsync(dataSources.For(tenant.DatabaseName), days, cancellationToken);
                if (pruned > 0)
                {
                    logger.LogInformation("Pruned {Count} change rows older than {Days} days from {Tenant}", pruned, days, tenant.Subdomain);
                }
            }
            catch (NpgsqlException e)
            {
                logger.LogWarning("Operation log retention failed for {Tenant}: {Message}", tenant.Subdomain, e.Message);
            }
        }
    }
}
