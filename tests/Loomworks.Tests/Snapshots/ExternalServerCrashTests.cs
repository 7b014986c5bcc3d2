using System.Globalization;
using Loomworks.Tests.Infrastructure;

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
                new Dictionary<string, string> { ["LOOMWORKS_TEST_CRASH_AFTER_STEP"] = step });
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
    }
}
