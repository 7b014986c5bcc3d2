using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Server;

/// <summary>The executable's commands and its answers to bad configuration, as a user sees them.</summary>
public sealed class CliTests : IDisposable
{
    private readonly Scratch _scratch = new("cli");

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public async Task Version_prints_loomworks_version_plus_odoo_level_from_the_VERSION_file()
    {
        var (exitCode, output) = await LoomworksProcess.RunAsync(["version"]);

        var versionFile = LoomworksVersion.Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "VERSION")));
        Assert.Equal(0, exitCode);
        Assert.Equal($"{versionFile["LOOMWORKS_VERSION"]}+odoo{versionFile["ODOO_VERSION"]}", output.Trim());
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("server --help")]
    [InlineData("version --help")]
    [InlineData("doctor --help")]
    [InlineData("config generate --help")]
    public async Task Every_command_has_help(string arguments)
    {
        await LoomworksProcess.AssertExitAsync(0, arguments.Split(' '), "Usage:", "--http-port");
    }

    [Fact]
    public async Task Malformed_config_exits_2_naming_file_line_and_key()
    {
        var config = _scratch.File("bad.conf");
        await File.WriteAllTextAsync(config, "[options]\nhttp_port = eighty\n");

        await LoomworksProcess.AssertExitAsync(2, ["server", "-c", config], $"{config}:2", "http_port");
    }

    [Fact]
    public async Task Invalid_dbfilter_flag_exits_2_naming_the_option()
    {
        await LoomworksProcess.AssertExitAsync(2, ["server", "--db-filter", "^(oops"], "--db-filter", "regular expression");
    }

    [Fact]
    public async Task Unknown_key_in_the_file_is_a_warning_not_a_failure()
    {
        var config = _scratch.File("odoo.conf");
        await File.WriteAllTextAsync(config, "[options]\naddons_path = /opt/addons\n");

        var (exitCode, output) = await LoomworksProcess.RunAsync(["config", "generate", "-c", config, "-o", _scratch.File("x.conf")],
            new Dictionary<string, string>());
        var (serverExit, serverOutput) = await LoomworksProcess.RunAsync(
            ["doctor", "-c", config, "--data-dir", _scratch.File("d"), "--db-host", "127.0.0.1", "--db-port", "1"]);

        Assert.Equal(0, exitCode);
        Assert.Equal(1, serverExit); // the doctor fails on the unreachable server, not on the key
        Assert.Contains("warning:", serverOutput);
        Assert.Contains("addons_path", serverOutput);
        Assert.DoesNotContain("warning", output); // generate never reads the file it writes
    }

    [Fact]
    public async Task Unknown_flag_is_refused()
    {
        var (exitCode, output) = await LoomworksProcess.RunAsync(["server", "--no-such-flag"]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("--no-such-flag", output);
    }

    [Fact]
    public async Task Config_generate_writes_a_0600_file_from_environment_and_flags()
    {
        var target = _scratch.File("generated.conf");

        var (exitCode, _) = await LoomworksProcess.RunAsync(["config", "generate", "-o", target, "--http-port", "9099"],
            new Dictionary<string, string> { ["DB_HOST"] = "db.internal", ["ADMIN_PASSWD"] = "pw" });

        Assert.Equal(0, exitCode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(target));
        var text = await File.ReadAllTextAsync(target);
        Assert.Contains("db_host = db.internal", text);
        Assert.Contains("http_port = 9099", text);
        Assert.Contains("admin_passwd = pw", text);
    }

    [Fact]
    public async Task Missing_PostgreSQL_binaries_name_the_Debian_package()
    {
        var empty = _scratch.File("empty-bin");
        Directory.CreateDirectory(empty);

        await LoomworksProcess.AssertExitAsync(1, ServerArguments(_scratch.File("d"), "--loomworks-pg-bindir", empty), "postgresql-15");
    }

    [Fact]
    public async Task Data_dir_that_cannot_be_created_is_a_clear_error()
    {
        var blocker = _scratch.File("a-file");
        await File.WriteAllTextAsync(blocker, "");

        await LoomworksProcess.AssertExitAsync(1, ServerArguments(Path.Combine(blocker, "data")), "is not writable");
    }

    [Fact]
    public async Task Data_dir_the_postgres_user_cannot_enter_is_refused_with_the_reason()
    {
        Assert.True(Loomworks.Postgres.CommandRunner.IsRoot, "the suite runs as root, as CI does");
        var closed = _scratch.File("closed");
        Directory.CreateDirectory(closed);
        File.SetUnixFileMode(closed, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        await LoomworksProcess.AssertExitAsync(1, ServerArguments(Path.Combine(closed, "data")), "cannot enter");
    }

    [Fact]
    public async Task Doctor_passes_on_the_embedded_default_and_names_each_check()
    {
        // The server's first start creates the cluster; the doctor then checks it, running or stopped.
        string[] embedded = ["--data-dir", _scratch.File("d"), "--db-port", $"{Scratch.FreePort()}",
            "--loomworks-state-dir", _scratch.File("state")];
        await using (var server = LoomworksProcess.Start(["server", "--http-port", $"{Scratch.FreePort()}", .. embedded]))
        {
            await server.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
        }

        var (exitCode, output) = await LoomworksProcess.RunAsync(["doctor", .. embedded]);

        Assert.True(exitCode == 0, output);
        foreach (var check in new[] { "data_dir", "pgbackrest", "postgresql", "wal_level", "archive_mode", "cluster marker" })
        {
            Assert.Contains($"PASS  {check}:", output);
        }
    }

    [Fact]
    public async Task Doctor_fails_with_a_fix_when_PostgreSQL_is_unreachable()
    {
        string[] unreachable = ["--db-host", "127.0.0.1", "--db-port", $"{Scratch.FreePort()}"];
        await LoomworksProcess.AssertExitAsync(1, ["doctor", "--data-dir", _scratch.File("d"), .. unreachable],
            "FAIL  postgresql:", "fix:");
    }

    /// <summary>A server start on <paramref name="dataDir"/> with a free HTTP port and its own state directory.</summary>
    private string[] ServerArguments(string dataDir, params string[] more) =>
        ["server", "--data-dir", dataDir, .. more, "--http-port", $"{Scratch.FreePort()}", "--loomworks-state-dir", _scratch.File("state")];

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Loomworks.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("the repository root (Loomworks.slnx) was not found above the test binaries");
    }
}
