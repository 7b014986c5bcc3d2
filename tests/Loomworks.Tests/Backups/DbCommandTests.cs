using Loomworks.Backups;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

/// <summary>The real <c>loomworks db</c> command, including a kill -9 in the middle of a restore.</summary>
public sealed class DbCommandTests(PostgresFixture pg)
{
    private string[] Flags(ManagerHarness h) =>
    [
        "--db-host", pg.Endpoint.Host, "--db-port", $"{pg.Endpoint.Port}", "--db-user", "postgres",
        "--data-dir", h.Scratch.Path, "--loomworks-mgmt-db", h.ManagementName,
    ];

    [Fact]
    public async Task Backup_restore_list_and_a_restore_killed_midway_is_rolled_back_by_the_next_run()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "cli-db");
        var source = await h.SeedAsync("src");
        var zip = h.Scratch.File("b.zip");
        var (backupExit, backupOutput) = await LoomworksProcess.RunAsync(["db", "backup", source, "-o", zip, .. Flags(h)]);
        Assert.True(backupExit == 0, backupOutput);
        Assert.True(new FileInfo(zip).Length > 0);

        var killed = h.Name("killed");
        var (crashExit, crashOutput) = await LoomworksProcess.RunAsync(["db", "restore", killed, zip, .. Flags(h)],
            new Dictionary<string, string> { [CrashPoint.Variable] = "db:restore:loaded" });
        Assert.Equal(137, crashExit);
        Assert.True(await h.ExistsAsync(killed), crashOutput);
        Assert.Equal("restoring", await h.TenantStateAsync(killed));

        // Any next run recovers first: the half-made restore is rolled back.
        var (listExit, listOutput) = await LoomworksProcess.RunAsync(["db", "list", .. Flags(h)]);
        Assert.True(listExit == 0, listOutput);
        await h.AssertAbsentAsync(killed);

        var restored = h.Name("restored");
        var (restoreExit, restoreOutput) = await LoomworksProcess.RunAsync(["db", "restore", restored, zip, .. Flags(h)]);
        Assert.True(restoreExit == 0, restoreOutput);
        var (_, listed) = await LoomworksProcess.RunAsync(["db", "list", .. Flags(h)]);
        Assert.Contains(restored, listed, StringComparison.Ordinal);

        var (badExit, badOutput) = await LoomworksProcess.RunAsync(["db", "restore", "Bad_Name", zip, .. Flags(h)]);
        Assert.Equal(2, badExit);
        Assert.Contains("not a valid database name", badOutput, StringComparison.Ordinal);
    }
}
