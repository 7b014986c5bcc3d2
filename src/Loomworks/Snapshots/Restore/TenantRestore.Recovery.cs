using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>What a dead process left, a finished restore undone, a failed one rolled back, old copies pruned.</summary>
public sealed partial class TenantRestore
{
    /// <summary>
    /// At start: every job left running or undoing by a dead process is resumed (the copy was loaded: finish the
    /// swap) or rolled back (before that); scratch PostgreSQL processes and folders are always removed.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        var recovered = 0;
        foreach (var job in await jobs.UnfinishedAsync(cancellationToken))
        {
            var lockConnection = await jobs.TryLockAsync(job.Id, cancellationToken);
            if (lockConnection is null)
            {
                continue; // a live process is working on it
            }
            try
            {
                recovered++;
                logger.LogWarning("Recovering restore job {Job}, interrupted after {Step}", job.Id, job.StepName);
                await CleanScratchAsync(job.ScratchDir, cancellationToken);
                if (job.State == "undoing")
                {
                    await UndoStepsAsync(job, cancellationToken);
                }
                else if (job.Step >= RestoreSteps.Loaded)
                {
                    await SwapAsync(job, cancellationToken);
                    await jobs.SetStepAsync(job.Id, RestoreSteps.Swapped, cancellationToken);
                    await FinishAsync(job, cancellationToken);
                }
                else
                {
                    await RollBackAsync(job, $"interrupted after step '{job.StepName}'; rolled back, the tenant is unchanged",
                        cancellationToken);
                }
            }
            finally
            {
                await RestoreJobStore.UnlockAsync(lockConnection, job.Id);
            }
        }
        // Folders no unfinished job owns: left by a crash before the job recorded them. Only our own job-<id>
        // folders: the scratch root is configurable and may be shared with other programs.
        var owned = (await jobs.UnfinishedAsync(cancellationToken)).Select(j => j.ScratchDir).ToHashSet();
        foreach (var root in new[] { ScratchRoot, MemoryRoot }.OfType<string>().Where(Directory.Exists))
        {
            foreach (var dir in Directory.GetDirectories(root)
                         .Where(d => ScratchFolderName().IsMatch(Path.GetFileName(d)) && !owned.Contains(d)))
            {
                await CleanScratchAsync(dir, cancellationToken);
            }
        }
        return recovered;
    }

    /// <summary>Swaps the database a finished restore replaced back in; the restored copy is dropped.</summary>
    public async Task<RestoreJob> UndoAsync(long jobId, CancellationToken cancellationToken)
    {
        var job = await jobs.GetAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.NotFound, $"there is no restore job {jobId}");
        if (job.AsSubdomain is not null)
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"job {jobId} restored into a new tenant '{job.AsSubdomain}'; there is nothing to swap back (delete that tenant instead)");
        }
        if (job.State is not ("done" or "undoing"))
        {
            throw new SnapshotException(job.State == "running" ? SnapshotErrorKind.Conflict : SnapshotErrorKind.Invalid,
                $"job {jobId} is {job.State}; only a finished restore can be undone");
        }
        if (job.AsideDroppedAt is not null || !await databases.ExistsAsync(job.AsideDatabase!, cancellationToken))
        {
            throw new SnapshotException(SnapshotErrorKind.Invalid,
                $"the database job {jobId} replaced was kept for {keepPreRestoreHours} h and is gone; restore a snapshot instead");
        }
        var lockConnection = await jobs.TryLockAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.Conflict, $"job {jobId} is being worked on by another process");
        try
        {
            try
            {
                await jobs.SetStateAsync(jobId, "undoing", cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw new SnapshotException(SnapshotErrorKind.Conflict, "another restore of this tenant is running; wait for it to finish");
            }
            await UndoStepsAsync(job, cancellationToken);
            return (await jobs.GetAsync(jobId, cancellationToken))!;
        }
        finally
        {
            await RestoreJobStore.UnlockAsync(lockConnection, jobId);
        }
    }

    /// <summary>Drops databases kept aside longer than loomworks_keep_pre_restore_hours.</summary>
    public async Task<int> PruneAsideAsync(CancellationToken cancellationToken)
    {
        var dropped = 0;
        foreach (var job in await jobs.WithAsideAsync(cancellationToken))
        {
            if (job.FinishedAt is { } finished && finished.AddHours(keepPreRestoreHours) < DateTimeOffset.UtcNow)
            {
                await databases.DropAsync(job.AsideDatabase!, cancellationToken);
                await jobs.MarkAsideDroppedAsync(job.Id, cancellationToken);
                dropped++;
            }
        }
        return dropped;
    }

    private async Task RollBackAsync(RestoreJob job, string error, CancellationToken cancellationToken)
    {
        await CleanScratchAsync(job.ScratchDir, cancellationToken);
        if (job.AsSubdomain is null && !await databases.ExistsAsync(job.TargetDatabase, cancellationToken)
            && await databases.ExistsAsync(job.AsideDatabase!, cancellationToken))
        {
            // A failure inside the swap: put the original back.
            await databases.RenameAsync(job.AsideDatabase!, job.TargetDatabase, cancellationToken);
            await databases.AllowConnectionsAsync(job.TargetDatabase, true, cancellationToken);
        }
        if (job.AsSubdomain is null && await databases.ExistsAsync(job.TargetDatabase, cancellationToken))
        {
            await databases.AllowConnectionsAsync(job.TargetDatabase, true, cancellationToken);
            await SetTenantStateAsync(job, TenantStates.Active, RestoreDetail(job) + " rolled back", cancellationToken);
        }
        await databases.DropAsync(job.NewDatabase, cancellationToken);
        await jobs.FailAsync(job.Id, error, cancellationToken);
    }
}
