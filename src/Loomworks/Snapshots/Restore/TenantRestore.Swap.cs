using System.Diagnostics;
using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>The swap that puts the restored copy in place of the tenant's database, and its undo.</summary>
public sealed partial class TenantRestore
{
    /// <summary>
    /// Puts the restored copy in place. Idempotent, so a crash anywhere inside is finished by running it again: which
    /// of the three databases exist says how far it got. The tenant answers 503 (state restoring) only meanwhile.
    /// </summary>
    private async Task SwapAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = job.TargetDatabase;
        if (job.AsSubdomain is not null)
        {
            if (await databases.ExistsAsync(job.NewDatabase, cancellationToken) && !await databases.ExistsAsync(target, cancellationToken))
            {
                await databases.RenameAsync(job.NewDatabase, target, cancellationToken);
            }
            await lifecycle.InsertIfAbsentAsync(new NewTenantRow(job.AsSubdomain, job.AsSubdomain, target, TenantStates.Active),
                RestoreDetail(job), Actor, cancellationToken);
            return;
        }
        var started = Stopwatch.GetTimestamp();
        await CloseSessionsFirstAsync(target, job.NewDatabase, cancellationToken);
        var closed = Stopwatch.GetElapsedTime(started);
        await SetTenantStateAsync(job, TenantStates.Restoring, RestoreDetail(job), cancellationToken);
        var restoring = Stopwatch.GetElapsedTime(started);
        await ReplaceDatabaseAsync(target, job.NewDatabase, job.AsideDatabase!, cancellationToken);
        var replaced = Stopwatch.GetElapsedTime(started);
        await SetTenantStateAsync(job, TenantStates.Active, RestoreDetail(job), cancellationToken);
        logger.LogInformation("Restore job {Job}: sessions closed after {Closed} ms, tenant restoring after {Restoring} ms, databases "
            + "swapped after {Replaced} ms, active again after {Active} ms", job.Id, (long)closed.TotalMilliseconds,
            (long)restoring.TotalMilliseconds, (long)replaced.TotalMilliseconds, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>
    /// Puts <paramref name="replacement"/> in the place of <paramref name="target"/>, which is set aside under
    /// <paramref name="asideName"/>; run again after a crash, it finishes what is left. The tenant cannot be reached
    /// from the refusal of new sessions until the renames commit, both at once, so nothing leaves it without a database.
    /// </summary>
    private async Task ReplaceDatabaseAsync(string target, string replacement, string asideName, CancellationToken cancellationToken)
    {
        if (await databases.ExistsAsync(replacement, cancellationToken))
        {
            if (await databases.ExistsAsync(target, cancellationToken))
            {
                await databases.AllowConnectionsAsync(target, false, cancellationToken);
                await databases.RenameAsync([(target, asideName), (replacement, target)], cancellationToken);
            }
            else
            {
                await databases.RenameAsync(replacement, target, cancellationToken);
            }
        }
        await databases.AllowConnectionsAsync(target, true, cancellationToken);
    }

    /// <summary>
    /// Ends the idle sessions on both databases of a swap while the tenant still answers: what takes its time to end
    /// (this process's pooled connections, an autovacuum worker) then does so outside the moment the tenant is away, and
    /// the swap itself only ends what came in since.
    /// </summary>
    private async Task CloseSessionsFirstAsync(string target, string replacement, CancellationToken cancellationToken)
    {
        await databases.EndIdleSessionsAsync(target, cancellationToken);
        await databases.EndIdleSessionsAsync(replacement, cancellationToken);
    }

    /// <summary>The actor of the tenant events a restore records.</summary>
    private const string Actor = "restore";

    private static string RestoreDetail(RestoreJob job) => "restore job " + job.Id.ToString(CultureInfo.InvariantCulture);

    /// <summary>Moves the restored tenant through Tenancy, so its event is recorded and every instance's cache evicts it.</summary>
    private Task<bool> SetTenantStateAsync(RestoreJob job, string state, string detail, CancellationToken cancellationToken) =>
        lifecycle.SetStateAsync(job.TenantId, state, state, detail, Actor, cancellationToken);

    private async Task UndoStepsAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = job.TargetDatabase;
        var undone = "lwundone_" + job.Id.ToString(CultureInfo.InvariantCulture);
        var detail = "undo of " + RestoreDetail(job);
        await CloseSessionsFirstAsync(target, job.AsideDatabase!, cancellationToken);
        await SetTenantStateAsync(job, TenantStates.Restoring, detail, cancellationToken);
        await ReplaceDatabaseAsync(target, job.AsideDatabase!, undone, cancellationToken);
        await SetTenantStateAsync(job, TenantStates.Active, detail, cancellationToken);
        await databases.DropAsync(undone, cancellationToken);
        await jobs.MarkUndoneAsync(job.Id, cancellationToken);
    }
}
