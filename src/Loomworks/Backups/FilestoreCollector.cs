using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// Odoo's filestore garbage collection, once an hour for every active tenant: files no ir_attachment row references go,
/// but only once they are older than loomworks_snapshot_retention_days, so a database restored to any point of the
/// snapshot window still finds every file its rows name.
/// </summary>
public sealed class FilestoreCollector(
    TenantStore tenants, TenantDataSources dataSources, FileStore files, LoomworksSettings settings, ILogger<FilestoreCollector> logger)
    : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            await Task.Delay(TimeSpan.FromMinutes(2), stoppingToken);
            do
            {
                await CollectAllAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass over the active tenants; a tenant that fails is logged and the others still collected. Returns the bytes freed.</summary>
    public async Task<long> CollectAllAsync(CancellationToken cancellationToken)
    {
        var olderThan = DateTimeOffset.UtcNow - TimeSpan.FromDays(settings.GetInt(ConfigKeys.SnapshotRetentionDays));
        IReadOnlyList<Tenant> all;
        try
        {
            all = await tenants.ListAsync(cancellationToken);
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning("Filestore collection skipped: the management database did not answer ({Message})", e.Message);
            return 0;
        }
        long total = 0;
        foreach (var tenant in all.Where(t => t.State == TenantStates.Active))
        {
            try
            {
                var freed = await Attachments.CollectAsync(dataSources.For(tenant.DatabaseName), files, tenant.DatabaseName, olderThan, cancellationToken);
                total += freed;
                if (freed > 0)
                {
                    logger.LogInformation("Collected {Bytes} bytes of unreferenced files from {Tenant}", freed, tenant.Subdomain);
                }
            }
            catch (Exception e) when (e is NpgsqlException or IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("Filestore collection failed for {Tenant}: {Message}", tenant.Subdomain, e.Message);
            }
        }
        return total;
    }
}
