using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Tenancy;

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
        await SetTenantStateAsync(job, TenantStates.Restoring, RestoreDetail(job), cancellationToken);
        await ReplaceDatabaseAsync(target, job.NewDatabase, job.AsideDatabase!, cancellationToken);
        await SetTenantStateAsync(job, TenantStates.Active, RestoreDetail(job), cancellationToken);
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
        await SetTenantStateAsync(job, TenantStates.Restoring, detail, cancellationToken);
        await ReplaceDatabaseAsync(target, job.AsideDatabase!, undone, cancellationToken);
        await SetTenantStateAsync(job, TenantStates.Active, detail, cancellationToken);
        await databases.DropAsync(undone, cancellationToken);
        await jobs.MarkUndoneAsync(job.Id, cancellationToken);
    }
}
