using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

public sealed class DockerTests
{
    private static readonly Dictionary<string, string?> ComposeEnvironment = new()
    {
        ["POSTGRES_PASSWORD"] = "compose-test-db",
        ["ADMIN_PASSWD"] = "compose-test-admin",
    };

    private static string Docker(string name) => Tool.Repo("infrastructure", "docker", name);

    [Fact]
    public async Task Compose_file_is_valid_and_wires_archiving_into_the_shared_repository()
    {
        var compose = Docker("docker-compose.yml");
        var (exitCode, output) = await Tool.RunAsync("docker-compose", ["-f", compose, "config", "-q"], environment: ComposeEnvironment);
        Assert.True(exitCode == 0, output);
        var (_, resolved) = await Tool.RunAsync("docker-compose", ["-f", compose, "config"], environment: ComposeEnvironment);
        foreach (var service in new[] { "db:", "loomworks:", "nginx:" })
        {
            Assert.Contains($"\n  {service}\n", resolved, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("redis", resolved, StringComparison.Ordinal);
        // The repository volume is mounted by PostgreSQL (archive-push) and by Loomworks (snapshots, restores).
        Assert.Equal(2, CountOf(resolved, "pgbackrest_repo:/var/lib/pgbackrest:rw"));
        Assert.Contains("DB_PASSWORD: compose-test-db", resolved, StringComparison.Ordinal);
        Assert.Contains("--data-checksums", resolved, StringComparison.Ordinal);
        Assert.DoesNotMatch("(?m)^name:", File.ReadAllText(compose));
    }

    [Fact]
    public async Task Compose_refuses_to_start_without_passwords_and_names_the_missing_one()
    {
        var (exitCode, output) = await Tool.RunAsync("docker-compose", ["-f", Docker("docker-compose.yml"), "config", "-q"],
            environment: new Dictionary<string, string?> { ["POSTGRES_PASSWORD"] = null, ["ADMIN_PASSWD"] = null });
        Assert.NotEqual(0, exitCode);
        Assert.Contains("set POSTGRES_PASSWORD in .env", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Dockerfile")]
    [InlineData("postgres.Dockerfile")]
    public async Task Dockerfiles_pass_dockerfilelint(string name)
    {
        var (exitCode, output) = await LintTools.DockerfilelintAsync(Docker(name));
        Assert.True(exitCode == 0, output);
        Assert.Contains("Issues: None found", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dockerfilelint_catches_a_broken_dockerfile()
    {
        using var scratch = new Scratch("dockerfile");
        var file = scratch.Write("Dockerfile", "FROM debian:bookworm-slim\nRUN apt-get install curl\nEXPOSE notaport\n");
        var (exitCode, output) = await LintTools.DockerfilelintAsync(file);
        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain("Issues: None found", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Image_is_multi_stage_non_root_with_client_tools_and_the_seed_healthcheck()
    {
        var dockerfile = File.ReadAllText(Docker("Dockerfile"));
        Assert.Equal(2, CountOf(dockerfile, "\nFROM "));
        Tool.AssertContainsAll(dockerfile,
            "--self-contained true",
            "-p:PublishTrimmed=false",
            "postgresql-client",
            "pgbackrest",
            "USER loomworks:loomworks",
            "CMD curl -fsS http://localhost:8069/web/health || exit 1",
            "ENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]");
    }

    [Fact]
    public async Task Entrypoint_generates_the_configuration_from_the_environment_and_runs_loomworks()
    {
        using var scratch = new Scratch("entrypoint");
        var config = scratch.File("loomworks.conf");
        var (exitCode, output) = await RunEntrypointAsync(["loomworks", "--help"], new()
        {
            ["LOOMWORKS_RC"] = config,
            ["ADMIN_PASSWD"] = "from-the-environment",
            ["DB_HOST"] = null,
        });
        Assert.True(exitCode == 0, output);
        Assert.Contains("Run the HTTP server", output, StringComparison.Ordinal);
        var text = File.ReadAllText(config);
        Assert.Contains("admin_passwd = from-the-environment", text, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));

        var (versionExit, version) = await RunEntrypointAsync(["version"], new() { ["LOOMWORKS_RC"] = config });
        Assert.Equal(0, versionExit);
        Assert.Equal(LoomworksVersion.Full, version.Trim());
    }

    [Fact]
    public async Task Entrypoint_gives_up_on_an_unreachable_postgres_and_says_where_it_looked()
    {
        using var scratch = new Scratch("entrypoint");
        var port = Scratch.FreePort();
        var (exitCode, output) = await RunEntrypointAsync(["loomworks"], new()
        {
            ["LOOMWORKS_RC"] = scratch.File("loomworks.conf"),
            ["DB_HOST"] = "127.0.0.1",
            ["DB_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["WAIT_FOR_POSTGRES_ATTEMPTS"] = "1",
        });
        Assert.Equal(1, exitCode);
        Assert.Contains($"PostgreSQL at 127.0.0.1:{port} did not answer after 1 attempts", output, StringComparison.Ordinal);
        Assert.False(File.Exists(scratch.File("loomworks.conf")));
    }

    [Fact]
    public async Task Nginx_routes_every_tenant_host_with_proxy_headers_and_upgrades_long_polling()
    {
        var nginx = File.ReadAllText(Tool.Repo("infrastructure", "nginx", "nginx.conf"));
        Tool.AssertContainsAll(nginx,
            "server_name .loomworks.localhost",
            "client_max_body_size 512m;",
            "location ~ ^/(websocket|longpolling)",
            "proxy_set_header Upgrade $http_upgrade;");
        // A location that sets any header inherits none: each location must carry all forwarded headers.
        var locations = System.Text.RegularExpressions.Regex.Split(nginx, @"\n\s+location ").Skip(1).ToList();
        Assert.Equal(2, locations.Count);
        foreach (var location in locations)
        {
            foreach (var header in new[] { "Host $host", "X-Forwarded-Host $host", "X-Forwarded-For $proxy_add_x_forwarded_for",
                         "X-Forwarded-Proto $scheme" })
            {
                Assert.Contains($"proxy_set_header {header};", location, StringComparison.Ordinal);
            }
        }
        Assert.Equal(CountOf(nginx, "{"), CountOf(nginx, "}"));
    }

    [Fact]
    public async Task Postgresql_conf_archives_wal_through_pgbackrest()
    {
        var conf = File.ReadAllText(Docker("postgresql.conf"));
        Tool.AssertContainsAll(conf,
            "wal_level = replica",
            "archive_mode = on",
            "archive_command = 'pgbackrest --stanza=loomworks archive-push %p'");
        var pgbackrest = File.ReadAllText(Docker("pgbackrest.conf"));
        Assert.Contains("[loomworks]", pgbackrest, StringComparison.Ordinal);
        Assert.Contains("repo1-path=/var/lib/pgbackrest", pgbackrest, StringComparison.Ordinal);
    }

    private static Task<(int ExitCode, string Output)> RunEntrypointAsync(string[] arguments, Dictionary<string, string?> environment)
    {
        // The entrypoint finds loomworks on PATH, as in the image; here it is the one built with the tests.
        environment["PATH"] = $"{AppContext.BaseDirectory}:{Environment.GetEnvironmentVariable("PATH")}";
        return Tool.RunAsync(Docker("entrypoint.sh"), arguments, workingDirectory: Path.GetTempPath(), environment: environment);
    }

    private static int CountOf(string text, string part) =>
        text.Split(part, StringSplitOptions.None).Length - 1;
}
