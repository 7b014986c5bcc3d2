using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// Work done for every active tenant once an hour, the first pass shortly after start. A tenant that fails is logged
/// and the others still get their turn; a management database that does not answer skips the pass.
/// </summary>
public abstract class HourlyTenantJob(TenantStore tenants, ILogger logger, TimeSpan firstDelay) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>What the job does, for log lines ("Filestore collection").</summary>
    protected abstract string Purpose { get; }

    /// <summary>One tenant's share of a pass; returns an amount (bytes, rows) the pass adds up.</summary>
    protected abstract Task<long> RunForTenantAsync(Tenant tenant, CancellationToken cancellationToken);

    /// <summary>The failures of one tenant that must not stop the pass for the others.</summary>
    protected virtual bool IsTenantFailure(Exception e) => e is NpgsqlException;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            await Task.Delay(firstDelay, stoppingToken);
            do
            {
                await RunAllAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass over the active tenants; returns the sum of what each tenant's share returned.</summary>
    public async Task<long> RunAllAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<Tenant> all;
        try
        {
            all = await tenants.ListAsync(cancellationToken);
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning("{Purpose} skipped: the management database did not answer ({Message})", Purpose, e.Message);
            return 0;
        }
        long total = 0;
        foreach (var tenant in all.Where(t => t.State == TenantStates.Active))
        {
            try
            {
                total += await RunForTenantAsync(tenant, cancellationToken);
            }
            catch (Exception e) when (IsTenantFailure(e))
            {
                logger.LogWarning("{Purpose} failed for {Tenant}: {Message}", Purpose, tenant.Subdomain, e.Message);
            }
        }
        return total;
    }
}
