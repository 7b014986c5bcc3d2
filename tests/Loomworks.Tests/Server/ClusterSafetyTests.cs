using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Server;

/// <summary>
/// Only the server's first start creates the embedded cluster; an emptied data_dir, a mistyped one or a different
/// cluster in its place is refused by every command, with the real executable.
/// </summary>
public sealed class ClusterSafetyTests : IDisposable
{
    private readonly Scratch _scratch = new("safety");
    private readonly int _dbPort = Scratch.FreePort();

    public void Dispose() => _scratch.Dispose();

    private string DataDir => _scratch.File("data");
    private string StateDir => _scratch.File("state");
    private string MarkerPath => Path.Combine(StateDir, ClusterMarker.FileName);

    private string[] Embedded(string? dataDir = null) =>
        ["--data-dir", dataDir ?? DataDir, "--db-port", $"{_dbPort}", "--loomworks-state-dir", StateDir];

    private async Task ServeOnceAsync(params string[] extra)
    {
        await using var server = LoomworksProcess.Start(["server", "--http-port", $"{Scratch.FreePort()}", .. Embedded(), .. extra]);
        await server.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
        server.Signal(15);
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public async Task Doctor_and_tenant_list_without_a_cluster_create_nothing_and_say_how_to_get_one()
    {
        await LoomworksProcess.AssertExitAsync(1, ["doctor", .. Embedded()],
            $"FAIL  postgresql: data_dir {DataDir} holds no PostgreSQL cluster", "fix: start `loomworks server` once with this data_dir");
        await LoomworksProcess.AssertExitAsync(1, ["tenant", "list", .. Embedded()],
            $"loomworks: data_dir {DataDir} holds no PostgreSQL cluster", MarkerPath);
        Directory.CreateDirectory(DataDir);
        await LoomworksProcess.AssertExitAsync(1, ["tenant", "list", .. Embedded()], "only `loomworks server` creates one");
        Assert.Empty(Directory.EnumerateFileSystemEntries(DataDir));
        Assert.False(Directory.Exists(StateDir), "a command other than the server wrote the marker's folder");
    }

    [Fact]
    public async Task After_the_first_start_an_emptied_or_mistyped_data_dir_is_refused_until_init_cluster()
    {
        await ServeOnceAsync();
        var first = new ClusterMarker(MarkerPath).Read();
        Assert.NotNull(first);
        Assert.Equal(DataDir, first.DataDir);
        Assert.Equal(ClusterMarker.SystemIdentifierOf(Path.Combine(DataDir, "postgres")), first.SystemIdentifier);

        // What a purge or a volume not mounted yet leaves behind.
        Directory.Delete(DataDir, recursive: true);
        await LoomworksProcess.AssertExitAsync(1, ["server", "--http-port", $"{Scratch.FreePort()}", .. Embedded()],
            $"data_dir {DataDir} holds no PostgreSQL cluster", $"the marker {MarkerPath} records that Loomworks created one there",
            "`loomworks server --init-cluster`");
        await LoomworksProcess.AssertExitAsync(1, ["tenant", "list", .. Embedded()], "the tenants' databases are missing");
        await LoomworksProcess.AssertExitAsync(1, ["doctor", .. Embedded()],
            "FAIL  postgresql:", "fix: mount the volume or correct data_dir");
        var typo = _scratch.File("dta");
        await LoomworksProcess.AssertExitAsync(1, ["server", "--http-port", $"{Scratch.FreePort()}", .. Embedded(typo)],
            $"is it a typo of {DataDir}?");
        Assert.False(Directory.Exists(DataDir), "a refused start created data_dir");
        Assert.False(Directory.Exists(typo), "a refused start created the mistyped data_dir");

        await ServeOnceAsync("--init-cluster");
        var second = new ClusterMarker(MarkerPath).Read();
        Assert.NotNull(second);
        Assert.NotEqual(first.SystemIdentifier, second.SystemIdentifier);
        var (afterExit, after) = await LoomworksProcess.RunAsync(["tenant", "list", .. Embedded()]);
        Assert.True(afterExit == 0, after);
    }

    [Fact]
    public async Task A_different_cluster_in_data_dir_is_refused_until_recorded_with_init_cluster()
    {
        await ServeOnceAsync();
        var recorded = new ClusterMarker(MarkerPath).Read()!.SystemIdentifier;
        // Another cluster, made by another configuration's first start, put where this one was.
        var other = _scratch.File("other");
        await using (var server = LoomworksProcess.Start(["server", "--http-port", $"{Scratch.FreePort()}", "--data-dir", other,
                         "--db-port", $"{Scratch.FreePort()}", "--loomworks-state-dir", _scratch.File("other-state")]))
        {
            await server.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
        }
        Directory.Delete(Path.Combine(DataDir, "postgres"), recursive: true);
        Directory.Move(Path.Combine(other, "postgres"), Path.Combine(DataDir, "postgres"));
        var foreign = ClusterMarker.SystemIdentifierOf(Path.Combine(DataDir, "postgres"));

        await LoomworksProcess.AssertExitAsync(1, ["server", "--http-port", $"{Scratch.FreePort()}", .. Embedded()],
            $"holds a PostgreSQL cluster with system identifier {foreign}", $"records that Loomworks created the one with {recorded} there",
            "record it with `loomworks server --init-cluster`");
        await LoomworksProcess.AssertExitAsync(1, ["tenant", "list", .. Embedded()],
            "this is not the cluster whose tenants this server had");
        Assert.Equal(recorded, new ClusterMarker(MarkerPath).Read()!.SystemIdentifier);

        await ServeOnceAsync("--init-cluster");
        Assert.Equal(foreign, new ClusterMarker(MarkerPath).Read()!.SystemIdentifier);
    }

    [Fact]
    public void The_marker_lives_outside_data_dir_where_the_configuration_says()
    {
        var config = _scratch.Write("site.conf", "[options]\n");
        var none = new Dictionary<string, string>();

        var explicitDir = ConfigLoader.Load(config, none, new Dictionary<string, string> { ["loomworks_state_dir"] = StateDir });
        var besideConfig = ConfigLoader.Load(config, none, none);

        Assert.Equal(MarkerPath, ClusterMarker.For(explicitDir).Path);
        Assert.Equal(Path.Combine(_scratch.Path, ClusterMarker.FileName), ClusterMarker.For(besideConfig).Path);
        Assert.Equal(Path.Combine(ClusterMarker.PackageStateDir, ClusterMarker.FileName),
            ClusterMarker.For(ConfigLoader.Load(Packaged(), none, none)).Path);
    }

    /// <summary>The package's configuration file as shipped, which names /var/lib/loomworks.state.</summary>
    private static string Packaged() =>
        Path.Combine(CliTests.RepositoryRoot(), "infrastructure", "packaging", "loomworks.conf");

    [Fact]
    public async Task Root_help_shows_the_commands_and_points_to_the_configuration_options()
    {
        var (exitCode, output) = await LoomworksProcess.RunAsync(["--help"]);

        Assert.Equal(0, exitCode);
        var commands = output.IndexOf("Commands:", StringComparison.Ordinal);
        Assert.True(commands >= 0 && commands < output.IndexOf("Options:", StringComparison.Ordinal), output);
        foreach (var command in new[] { "server", "version", "doctor", "config", "tenant", "db", "undo", "ops", "rewind", "backup",
                     "snapshot", "restore" })
        {
            Assert.Contains($"\n  {command} ", output);
        }
        Assert.Contains("`loomworks server --help` lists them", output);
        Assert.DoesNotContain("--loomworks-backup-repo", output);
        Assert.True(output.Split('\n').Length < 40, $"the root help is {output.Split('\n').Length} lines long:\n{output}");
    }
}
