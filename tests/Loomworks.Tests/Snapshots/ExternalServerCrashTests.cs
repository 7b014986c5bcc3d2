using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// The set-up of pgBackRest for an external server, killed with SIGKILL after each of its steps by the real
/// executable: the next start finishes it.
/// </summary>
public sealed class ExternalServerCrashTests(ExternalClusterFixture ext) : IClassFixture<ExternalClusterFixture>
{
    private string[] Arguments(params string[] command) =>
    [
        .. command, "--data-dir", ext.LoomworksDataDir, "--db-host", ext.Cluster.SocketDir,
        "--db-port", ext.Cluster.Port.ToString(CultureInfo.InvariantCulture), "--db-user", "postgres",
        "--loomworks-pg-data-dir", ext.Cluster.PgData, "--loomworks-archive-timeout", "30",
    ];

    [Fact]
    public async Task A_kill_after_each_set_up_step_is_finished_by_the_next_start()
    {
        foreach (var step in new[] { "pgbackrest-configured", "archive-command-set", "archive-timeout-set", "stanza-created" })
        {
            var (crashExit, crashOutput) = await LoomworksProcess.RunAsync(Arguments("backup", "info"),
                new Dictionary<string, string> { [CrashPoint.Variable] = "snapshots:" + step });
            Assert.True(crashExit == 137, $"{step}: exit {crashExit}\n{crashOutput}");
        }
        // Killed before its reload, the first ALTER SYSTEM was redone by a later start; the stanza exists, no backup yet.
        Assert.Contains("pgbackrest", await ext.ShowAsync("archive_command"));

        var (exit, output) = await LoomworksProcess.RunAsync(Arguments("backup", "info"));

        Assert.True(exit == 0, output);
        Assert.Contains("stanza: loomworks", output);
        Assert.Contains("full backup", output);
        Assert.Equal("30s", await ext.ShowAsync("archive_timeout"));
        var (doctorExit, doctor) = await LoomworksProcess.RunAsync(Arguments("doctor"));
        Assert.True(doctorExit == 0, doctor);

        // A start refused by the server's settings (here an archive_command that is not Loomworks' own for stanza
        // 'second'): snapshots off; once the operator clears it, the scheduler's retry sets everything up.
        await SetArchiveCommandAsync("cp %p /srv/wal/%f");
        var settings = ext.SettingsWith(("loomworks_pg_data_dir", ext.Cluster.PgData), ("loomworks_pgbackrest_stanza", "second"));
        var feature = await ext.StartFeatureAsync(settings, TestContext.Current.CancellationToken);
        using var backRest = feature.BackRest;
        Assert.False(backRest.IsConfigured);
        Assert.Contains("archive_command is already 'cp %p /srv/wal/%f'", backRest.Problem);
        var scheduler = new SnapshotScheduler(feature, ext.Tenants, NullLogger<SnapshotScheduler>.Instance);
        await SetArchiveCommandAsync("");
        await scheduler.RunOnceAsync(DateTimeOffset.UtcNow, TestContext.Current.CancellationToken);
        Assert.False(backRest.IsConfigured); // too early for a retry
        await scheduler.RunOnceAsync(DateTimeOffset.UtcNow + SnapshotsFeature.SetUpRetryInterval, TestContext.Current.CancellationToken);
        Assert.True(backRest.IsConfigured, backRest.Problem);
        Assert.Equal(backRest.Options.ArchiveCommand, await ext.ShowAsync("archive_command"));
        Assert.Single(await backRest.InfoAsync(TestContext.Current.CancellationToken)); // the retry's first full backup
    }

    private async Task SetArchiveCommandAsync(string command)
    {
        await ext.ExecuteAsync("postgres",
            $"ALTER SYSTEM SET archive_command = '{command.Replace("'", "''", StringComparison.Ordinal)}'; SELECT pg_reload_conf()");
        for (var i = 0; i < 100 && await ext.ShowAsync("archive_command") != command; i++)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.Equal(command, await ext.ShowAsync("archive_command"));
    }
}
