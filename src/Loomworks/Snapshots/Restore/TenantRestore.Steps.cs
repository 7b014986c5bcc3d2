using System.Diagnostics;
using System.Globalization;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>The steps of a restore job, run in order and persisted one by one.</summary>
public sealed partial class TenantRestore
{
    /// <summary>Runs (or resumes) a job to its end; a failure before the swap rolls back and leaves the tenant as it was.</summary>
    public async Task<RestoreJob> RunAsync(long jobId, IProgress<RestoreJob>? progress, CancellationToken cancellationToken)
    {
        var lockConnection = await jobs.TryLockAsync(jobId, cancellationToken)
            ?? throw new SnapshotException(SnapshotErrorKind.Conflict, $"job {jobId} is being worked on by another process");
        try
        {
            var job = (await jobs.GetAsync(jobId, cancellationToken))!;
            try
            {
                job = await RunStepsAsync(job, progress, cancellationToken);
            }
            catch (Exception e) when (e is not SimulatedCrashException)
            {
                logger.LogError(e, "Restore job {Job} failed", jobId);
                job = (await jobs.GetAsync(jobId, CancellationToken.None))!;
                await RollBackAsync(job, Describe(e, job.ScratchDir), CancellationToken.None);
                job = (await jobs.GetAsync(jobId, CancellationToken.None))!;
            }
            progress?.Report(job);
            return job;
        }
        finally
        {
            await RestoreJobStore.UnlockAsync(lockConnection, jobId);
        }
    }

    private async Task<RestoreJob> RunStepsAsync(RestoreJob job, IProgress<RestoreJob>? progress, CancellationToken cancellationToken)
    {
        var scratch = job.ScratchDir ?? Path.Combine(ScratchRoot, "job-" + job.Id.ToString(CultureInfo.InvariantCulture));
        var pgData = Path.Combine(scratch, "pgdata");
        var run = Path.Combine(scratch, "run");
        var port = FreePort();
        var phaseWatch = Stopwatch.StartNew();
        // Priority by need for the whole job, watching the other tenants from before the first step. The tenant's own
        // sessions are not another tenant's work, under its name or, renamed by the swap, under the name set aside.
        string[] ownDatabases = [job.NewDatabase, job.TargetDatabase, .. job.AsideDatabase is { } aside ? [aside] : Array.Empty<string>()];
        await using var priority = await RestorePriority.StartAsync(admin, new LoadPace(PacedBytesPerSecond), scratch,
            LoadApplication(job), [.. ownDatabases, jobs.DatabaseName, "postgres"], logger, job.Id, cancellationToken);
        var lowAtPhaseStart = TimeSpan.Zero;
        // Where a restore's time goes, phase by phase, and how much of it ran held back for other tenants: the figures
        // the restore bench is read against.
        void Phase(string name)
        {
            var low = priority.LowFor;
            logger.LogInformation("Restore job {Job}: {Phase} took {Milliseconds} ms, {LowMilliseconds} ms of it at low priority",
                job.Id, name, phaseWatch.ElapsedMilliseconds, (long)(low - lowAtPhaseStart).TotalMilliseconds);
            lowAtPhaseStart = low;
            phaseWatch.Restart();
        }
        async Task<RestoreJob> Step(int step)
        {
            await jobs.SetStepAsync(job.Id, step, CancellationToken.None);
            var current = (await jobs.GetAsync(job.Id, CancellationToken.None))!;
            progress?.Report(current);
            AfterStep?.Invoke(step);
            CrashPoint.Reached("tenant-restore:" + RestoreSteps.Names[step]);
            return current;
        }

        // Work overlapped with the critical path; always awaited before leaving, so a rollback never races it.
        Task? created = null;
        Task? scratchRemoved = null;
        try
        {
            if (job.Step < RestoreSteps.FilesRestored)
            {
                await CleanScratchAsync(scratch, cancellationToken);
                await jobs.SetScratchAsync(job.Id, scratch, cancellationToken);
                PrepareScratch(scratch);
                var include = job.IncludeOnly ? job.SourceDatabase : null;
                var result = await snapshots.BackRest.RestoreAsync(pgData, scratch, job.BackupSet!, job.TargetType, job.Target,
                    include, prefetchWal: true, priority.Low, cancellationToken);
                if (!result.Succeeded && include is not null && result.Diagnostic.Contains("database to include", StringComparison.Ordinal))
                {
                    // The database is newer than the backup's manifest: restore the whole cluster instead.
                    logger.LogWarning("Database {Db} is not in backup {Set}; restoring without --db-include", include, job.BackupSet);
                    await jobs.SetIncludeOnlyAsync(job.Id, false, cancellationToken);
                    Directory.Delete(pgData, recursive: true);
                    PrepareScratch(scratch);
                    result = await snapshots.BackRest.RestoreAsync(pgData, scratch, job.BackupSet!, job.TargetType, job.Target,
                        null, prefetchWal: true, priority.Low, cancellationToken);
                }
                if (!result.Succeeded)
                {
                    throw new SnapshotException(SnapshotErrorKind.Unavailable, $"pgbackrest restore failed: {result.Diagnostic}");
                }
                Phase("pgbackrest restore");
                job = await Step(RestoreSteps.FilesRestored);
            }
            if (job.Step < RestoreSteps.TargetReached)
            {
                // The empty database the copy is loaded into is made while the copy replays.
                created = CreateNewDatabaseAsync(job, cancellationToken);
                await StartScratchAsync(scratch, pgData, run, port, priority, cancellationToken);
                Phase("scratch start");
                var promoted = await WaitForTargetAsync(job.Id, scratch, pgData, run, port, job.SourceDatabase, cancellationToken);
                Phase(promoted ? "replay to target and promote" : "replay to target");
                job = await Step(RestoreSteps.TargetReached);
            }
            if (job.Step < RestoreSteps.Loaded)
            {
                await (created ?? CreateNewDatabaseAsync(job, cancellationToken));
                Phase("create database (rest of)");
                await CopyAsync(job, scratch, run, port, priority, () => Phase("pg_dump -j2"), cancellationToken);
                Phase("pg_restore -j2");
                job = await Step(RestoreSteps.Dumped);
                // The copy is no longer needed: it stops and goes while the rest runs.
                priority.ScratchDone();
                scratchRemoved = Task.Run(() => CleanScratchAsync(scratch, CancellationToken.None), CancellationToken.None);
                await databases.CopyGrantsAndSettingsAsync(job.SourceDatabase, job.NewDatabase, cancellationToken);
                await UpgradeSchemaAsync(job.NewDatabase, job.TargetDatabase, cancellationToken);
                await FlushLoadAsync(job.NewDatabase, cancellationToken);
                Phase("grants, settings, migrations");
                job = await Step(RestoreSteps.Loaded);
            }
            if (job.Step < RestoreSteps.Swapped)
            {
                // Past this point the restored copy is complete: finishing is always the way forward.
                await SwapAsync(job, CancellationToken.None);
                Phase("swap");
                job = await Step(RestoreSteps.Swapped);
            }
            // Done is recorded before the scratch folder is gone: a crash from here on leaves a folder no unfinished job
            // owns, which the next start's recovery removes.
            job = await Step(RestoreSteps.Done);
            Phase("done recorded");
        }
        finally
        {
            await SettleAsync(created);
            await SettleAsync(scratchRemoved);
        }
        await CleanScratchAsync(job.ScratchDir, CancellationToken.None);
        Phase("cleanup");
        return job;
    }

    /// <summary>Waits for overlapped work; its failure was either reported by the step that awaited it or no longer matters.</summary>
    private async Task SettleAsync(Task? task)
    {
        if (task is null)
        {
            return;
        }
        try
        {
            await task;
        }
        catch (Exception e) when (e is not SimulatedCrashException)
        {
            logger.LogDebug(e, "Overlapped restore work failed");
        }
    }

    private async Task FinishAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        await CleanScratchAsync(job.ScratchDir, cancellationToken);
        await jobs.SetStepAsync(job.Id, RestoreSteps.Done, cancellationToken);
        AfterStep?.Invoke(RestoreSteps.Done);
    }
}
