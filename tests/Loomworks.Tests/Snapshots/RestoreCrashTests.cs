using System.Diagnostics;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// The real <c>loomworks</c> executable killed with SIGKILL after each persisted restore step (and after a snapshot is
/// recorded), then started again; and a disk that really fills up (a small tmpfs as the scratch folder) during a restore.
/// </summary>
public sealed class RestoreCrashTests(PitrFixture pitr) : IClassFixture<PitrFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;

    public static TheoryData<string> Steps => new(
        RestoreSteps.Names[RestoreSteps.FilesRestored], RestoreSteps.Names[RestoreSteps.TargetReached],
        RestoreSteps.Names[RestoreSteps.Dumped], RestoreSteps.Names[RestoreSteps.Loaded], RestoreSteps.Names[RestoreSteps.Swapped]);

    private static int StepNumber(string step) => RestoreSteps.Names.ToList().IndexOf(step);

    private string[] Args(params string[] command) => [.. command, .. pitr.CliOptions()];

    private static Dictionary<string, string> CrashAfter(string point) => new() { [CrashPoint.Variable] = point };

    private async Task TenantWithDataAsync(string subdomain)
    {
        await pitr.CreateTenantAsync(subdomain);
        await pitr.ExecuteAsync(subdomain, """
            CREATE TABLE partner (id int PRIMARY KEY, name text NOT NULL);
            INSERT INTO partner SELECT g, 'partner ' || g FROM generate_series(1, 300) g;
            """);
    }

    private Task DamageAsync(string database) => pitr.ExecuteAsync(database, """
        UPDATE partner SET name = 'renamed' WHERE id <= 10;
        DELETE FROM partner WHERE id > 200;
        CREATE TABLE intruder (id int);
        """);

    private async Task<RestoreJob> LatestJobAsync(string database)
    {
        var id = await pitr.ScalarAsync<long>(pitr.Settings.ManagementDatabase,
            $"SELECT max(id) FROM loomworks_restore_job WHERE source_database = '{database}'");
        return (await pitr.Feature.Restore.Jobs.GetAsync(id, None))!;
    }

    [Theory]
    [MemberData(nameof(Steps))]
    public async Task A_kill_9_of_the_process_after_each_restore_step_is_resumed_or_rolled_back_by_the_next_start(string step)
    {
        var name = "rk-" + step.Replace('_', '-');
        await TenantWithDataAsync(name);
        var before = await pitr.ContentAsync(name);
        var snapshot = await pitr.Feature.Snapshots.CreateAsync(name, null, SnapshotTypes.Manual, None);
        Assert.Equal("ready", (await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None)).State);
        await DamageAsync(name);
        var damaged = await pitr.ContentAsync(name);

        var (exitCode, output) = await LoomworksProcess.RunAsync(
            Args("restore", name, "--snapshot", snapshot.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--yes"),
            CrashAfter("tenant-restore:" + step), TimeSpan.FromMinutes(3));
        Assert.True(exitCode == 137, $"exit {exitCode}:\n{output}");

        var job = await LatestJobAsync(name);
        Assert.Equal("running", job.State);
        Assert.Equal(step, job.StepName);
        // Between the crash and the next start the tenant serves its old data or the restored data, never nothing.
        var served = await pitr.ContentAsync(name);
        Assert.Equal(StepNumber(step) >= RestoreSteps.Swapped ? before : damaged, served);
        int? scratchPostmaster = null;
        if (step == RestoreSteps.Names[RestoreSteps.TargetReached])
        {
            // The dead run's scratch PostgreSQL is still running: the next start must stop it.
            var pidFile = Path.Combine(job.ScratchDir!, "pgdata", "postmaster.pid");
            scratchPostmaster = int.Parse(File.ReadLines(pidFile).First(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(Directory.Exists($"/proc/{scratchPostmaster}"), "the scratch copy outlived the killed process");
        }

        var (listed, listing) = await LoomworksProcess.RunAsync(Args("snapshot", "list", name), timeout: TimeSpan.FromMinutes(3));
        Assert.True(listed == 0, listing);

        var recovered = (await pitr.Feature.Restore.Jobs.GetAsync(job.Id, None))!;
        if (StepNumber(step) >= RestoreSteps.Loaded)
        {
            Assert.True(recovered.State == "done", recovered.Error);
            Assert.Equal(before, await pitr.ContentAsync(name));
            Assert.True(await pitr.DatabaseExistsAsync(recovered.AsideDatabase!), "the replaced database is kept for undo");
        }
        else
        {
            Assert.Equal("failed", recovered.State);
            Assert.Contains("rolled back", recovered.Error, StringComparison.Ordinal);
            Assert.Equal(damaged, await pitr.ContentAsync(name));
        }
        Assert.NotNull(recovered.FinishedAt);
        Assert.False(await pitr.DatabaseExistsAsync(recovered.NewDatabase));
        Assert.Equal(TenantStates.Active, (await pitr.Tenants.FindBySubdomainAsync(name, None))!.State);
        if (scratchPostmaster is { } pid)
        {
            Assert.True(await ExitedAsync(pid), "the scratch PostgreSQL was stopped");
        }
        Assert.False(Directory.Exists(job.ScratchDir), "the scratch folder was removed");
        Assert.True(pitr.ScratchIsClean(), "no scratch folder or scratch PostgreSQL is left");
    }

    [Fact]
    public async Task A_snapshot_left_pending_by_a_kill_9_is_completed_by_the_next_start_and_one_never_archived_fails()
    {
        const string name = "rk-pending";
        await TenantWithDataAsync(name);
        var (exitCode, output) = await LoomworksProcess.RunAsync(Args("snapshot", "create", name, "--name", "cut short"),
            CrashAfter("snapshots:snapshot_recorded"), TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 137, $"exit {exitCode}:\n{output}");
        var id = await pitr.ScalarAsync<long>(pitr.Settings.ManagementDatabase,
            "SELECT id FROM loomworks_snapshot WHERE name = 'cut short'");
        Assert.Equal("pending", (await pitr.Feature.Snapshots.GetAsync(id, None))!.State);

        var (listed, listing) = await LoomworksProcess.RunAsync(Args("snapshot", "list", name), timeout: TimeSpan.FromMinutes(2));
        Assert.True(listed == 0, listing);
        Assert.Equal("ready", (await pitr.Feature.Snapshots.GetAsync(id, None))!.State);

        // A pending snapshot whose segment never gets archived ends failed once PendingLimit has passed.
        await pitr.ExecuteAsync(pitr.Settings.ManagementDatabase, $"""
            UPDATE loomworks_snapshot SET state = 'pending', wal_file = 'FFFFFFFF00000000000000FF',
                created_at = now() - interval '{(int)SnapshotService.PendingLimit.TotalMinutes + 1} minutes'
            WHERE id = {id}
            """);
        await pitr.Feature.Snapshots.RefreshStatesAsync(None);
        Assert.Equal("failed", (await pitr.Feature.Snapshots.GetAsync(id, None))!.State);
    }

    [Fact]
    public async Task A_disk_that_fills_up_during_the_restore_fails_the_job_by_name_and_the_tenant_keeps_its_data()
    {
        const string name = "rk-diskfull";
        var mount = Path.Combine(pitr.DataDir, "small-disk");
        Directory.CreateDirectory(mount);
        await RunAsync("mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", mount);
        // On disk: this is about the scratch folder's disk filling up, not memory.
        var feature = pitr.FeatureWith(("loomworks_restore_scratch_dir", Path.Combine(mount, "restore")),
            ("loomworks_restore_in_memory", "False"));
        try
        {
            await TenantWithDataAsync(name);
            var snapshot = await pitr.Feature.Snapshots.CreateAsync(name, null, SnapshotTypes.Manual, None);
            Assert.Equal("ready", (await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None)).State);
            await DamageAsync(name);
            var damaged = await pitr.ContentAsync(name);

            // Too small from the start: refused before anything is done, naming the folder.
            var refused = await Assert.ThrowsAsync<SnapshotException>(() =>
                feature.Restore.StartAsync(new RestoreRequest(name, SnapshotId: snapshot.Id), None));
            Assert.Contains("not enough free disk space", refused.Message, StringComparison.Ordinal);
            Assert.Contains(feature.Restore.ScratchRoot, refused.Message, StringComparison.Ordinal);

            // Big enough when checked, then something else fills it: the restore itself runs out of space.
            await RunAsync("mount", "-o", "remount,size=2g", mount);
            var job = await feature.Restore.StartAsync(new RestoreRequest(name, SnapshotId: snapshot.Id), None);
            var free = new DriveInfo(mount).AvailableFreeSpace;
            await using (new FileStream(Path.Combine(mount, "filler"), new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                PreallocationSize = free - (2L << 20),
            }))
            {
            }
            Assert.True(new DriveInfo(mount).AvailableFreeSpace < 4L << 20);

            var failed = await feature.Restore.RunAsync(job.Id, null, None);

            Assert.Equal("failed", failed.State);
            Assert.True(failed.Error!.Contains("ran out of space", StringComparison.Ordinal), failed.Error);
            Assert.Contains("tenant keeps its current data", failed.Error, StringComparison.Ordinal);
            Assert.Equal(damaged, await pitr.ContentAsync(name));
            Assert.Equal(TenantStates.Active, (await pitr.Tenants.FindBySubdomainAsync(name, None))!.State);
            Assert.False(await pitr.DatabaseExistsAsync(failed.NewDatabase));
            Assert.False(Directory.EnumerateFileSystemEntries(feature.Restore.ScratchRoot).Any(), "the scratch folder is empty");
            Assert.False(PitrFixture.ProcessMentions(mount), "no scratch PostgreSQL is left");
        }
        finally
        {
            feature.BackRest.Dispose();
            await RunAsync("umount", mount);
            Directory.Delete(mount);
        }
    }

    private static async Task RunAsync(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info)!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', arguments)}: {error}");
    }

    /// <summary>
    /// True once <paramref name="pid"/> has exited: gone, or a zombie — its parent died in the kill -9, so whoever
    /// inherited it reaps it in its own time. Waits a few seconds for the exit itself.
    /// </summary>
    private static async Task<bool> ExitedAsync(int pid)
    {
        for (var i = 0; i < 50; i++)
        {
            string stat;
            try
            {
                stat = await File.ReadAllTextAsync($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return true;
            }
            if (stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z'))
            {
                return true;
            }
            await Task.Delay(200);
        }
        return false;
    }
}
