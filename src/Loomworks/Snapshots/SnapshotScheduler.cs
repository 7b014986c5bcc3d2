using Loomworks.Tenancy;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>
/// Once a minute: a retry of a failed set-up for an external server (every ten minutes), automatic snapshots of active
/// tenants, scheduled full and differential backups (and one for a tenant created after the newest backup, so
/// --db-include finds it), expire, pruning of expired snapshots and of databases kept aside by restores.
/// </summary>
public sealed class SnapshotScheduler(SnapshotsFeature feature, TenantStore tenants,
    ILogger<SnapshotScheduler> logger) : BackgroundService
{
    public static readonly TimeSpan Tick = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Tick);
        while (await NextTickAsync(timer, stoppingToken))
        {
            try
            {
                await RunOnceAsync(DateTimeOffset.UtcNow, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return; // shutting down in the middle of a pass
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Scheduled snapshot work failed");
            }
        }
    }

    private static async Task<bool> NextTickAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false; // shutting down
        }
    }

    /// <summary>One pass of the schedule; public so the tests and the CLI can run it on demand.</summary>
    public async Task RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await feature.RetrySetUpAsync(now, logger, cancellationToken);
        if (!feature.BackRest.IsConfigured)
        {
            return;
        }
        var options = feature.Options;
        var interval = options.AutoSnapshotIntervalSeconds;
        var active = (await tenants.ListAsync(cancellationToken)).Where(t => t.State == TenantStates.Active).ToList();
        if (interval > 0)
        {
            foreach (var tenant in active)
            {
                var last = (await feature.Snapshots.ListAsync(tenant.Subdomain, cancellationToken))
                    .LastOrDefault(s => s.SnapshotType == SnapshotTypes.Auto);
                if (last is null || last.CreatedAt.AddSeconds(interval) <= now)
                {
                    await feature.Snapshots.CreateAsync(tenant.Subdomain, null, SnapshotTypes.Auto, cancellationToken);
                }
            }
        }
        var sets = await feature.Snapshots.SyncBackupSetsAsync(cancellationToken);
        var type = BackupDue(sets, active, now, options.BackupFullIntervalDays, options.BackupDiffIntervalHours);
        if (type is not null)
        {
            logger.LogInformation("Starting a scheduled {Type} backup", type);
            await feature.Snapshots.BackupAsync(type, cancellationToken);
            await feature.BackRest.ExpireAsync(cancellationToken);
            await feature.Snapshots.SyncBackupSetsAsync(cancellationToken);
        }
        await feature.Snapshots.PruneExpiredAsync(cancellationToken);
        await feature.Restore.PruneAsideAsync(cancellationToken);
    }

    /// <summary>Which backup the schedule asks for now, or null.</summary>
    public static string? BackupDue(IReadOnlyList<BackupSet> sets, IReadOnlyList<Tenant> active, DateTimeOffset now,
        int fullIntervalDays, int diffIntervalHours)
    {
        var lastFull = sets.LastOrDefault(s => s.Type == "full");
        if (lastFull is null || (fullIntervalDays > 0 && lastFull.Stopped.AddDays(fullIntervalDays) <= now))
        {
            return "full";
        }
        var last = sets[^1];
        if (diffIntervalHours > 0 && last.Stopped.AddHours(diffIntervalHours) <= now)
        {
            return "diff";
        }
        // A database created after the newest backup is missing from its manifest.
        return active.Any(t => t.CreatedAt > last.Started) ? "incr" : null;
    }
}
