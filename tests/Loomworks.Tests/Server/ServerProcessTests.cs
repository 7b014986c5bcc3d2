using System.Net;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Server;

/// <summary>The real executable on its embedded default: start, serve, stop, survive kill -9, share a data_dir.</summary>
public sealed class ServerProcessTests : IDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly Scratch _scratch = new("srv");
    private readonly int _dbPort = Scratch.FreePort();

    public void Dispose() => _scratch.Dispose();

    private string DataDir => _scratch.File("data");

    private LoomworksProcess StartServer(int httpPort) =>
        LoomworksProcess.Start(["server", "--data-dir", DataDir, "--http-port", $"{httpPort}", "--db-port", $"{_dbPort}",
            "--loomworks-state-dir", _scratch.File("state")]);

    private static async Task<HttpStatusCode> GetAsync(int port, string path) =>
        (await Http.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"))).StatusCode;

    private string ManagementConnectionString =>
        new NpgsqlConnectionStringBuilder { Host = Path.Combine(DataDir, "run"), Port = _dbPort, Username = "postgres",
            Database = "loomworks_mgmt", Pooling = false }
            .ConnectionString;

    [Fact]
    public async Task Serves_health_and_readiness_then_SIGTERM_stops_server_and_PostgreSQL()
    {
        var port = Scratch.FreePort();
        await using var server = StartServer(port);
        await server.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));

        var health = await Http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/web/health"));
        Assert.Equal("""{"status":"pass"}""", health);
        Assert.Equal(HttpStatusCode.OK, await GetAsync(port, "/web/health/ready"));
        Assert.NotEmpty(Processes.Mentioning(DataDir));

        server.Signal(15);
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Empty(await Processes.WaitUntilNoneMentionAsync(DataDir, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task After_kill_9_the_next_start_joins_the_cluster_and_nothing_is_lost()
    {
        var port = Scratch.FreePort();
        await using (var first = StartServer(port))
        {
            await first.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
            await using var connection = new NpgsqlConnection(ManagementConnectionString);
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO loomworks_settings (key, value) VALUES ('kept', 'yes')", connection);
            await insert.ExecuteNonQueryAsync();
            first.KillHard();
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        await using var second = StartServer(port);
        await second.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
        Assert.Contains("Joining the PostgreSQL cluster already running", second.Output);
        Assert.Equal(HttpStatusCode.OK, await GetAsync(port, "/web/health/ready"));
        await using (var connection = new NpgsqlConnection(ManagementConnectionString))
        {
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("SELECT value FROM loomworks_settings WHERE key = 'kept'", connection);
            Assert.Equal("yes", await read.ExecuteScalarAsync());
        }

        second.Signal(15);
        await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Empty(await Processes.WaitUntilNoneMentionAsync(DataDir, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Two_servers_share_one_data_dir_and_the_last_one_out_stops_PostgreSQL()
    {
        var firstPort = Scratch.FreePort();
        var secondPort = Scratch.FreePort();
        await using var first = StartServer(firstPort);
        await first.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));
        await using var second = StartServer(secondPort);
        await second.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));

        first.Signal(15);
        await first.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains("Leaving PostgreSQL running", first.Output);
        Assert.Equal(HttpStatusCode.OK, await GetAsync(secondPort, "/web/health/ready"));

        second.Signal(15);
        await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Empty(await Processes.WaitUntilNoneMentionAsync(DataDir, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Readiness_is_503_while_the_management_database_does_not_answer()
    {
        var port = Scratch.FreePort();
        await using var server = StartServer(port);
        await server.WaitForOutputAsync("is serving", TimeSpan.FromSeconds(90));

        // Stop PostgreSQL under the running server: liveness stays, readiness goes.
        var pgCtl = Path.Combine(Loomworks.Postgres.PostgresBinaries.Locate().Directory, "pg_ctl");
        var stop = await Loomworks.Postgres.CommandRunner.RunAsync(pgCtl,
            ["stop", "-D", Path.Combine(DataDir, "postgres"), "-m", "immediate", "-w"],
            Loomworks.Postgres.CommandRunner.ServerUser);
        Assert.True(stop.Succeeded, stop.Diagnostic);

        Assert.Equal(HttpStatusCode.OK, await GetAsync(port, "/web/health"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, await GetAsync(port, "/web/health/ready"));
    }

    [Fact]
    public async Task Http_port_in_use_is_a_clear_error_and_leaves_no_process()
    {
        using var occupier = new System.Net.Sockets.TcpListener(IPAddress.Any, Scratch.FreePort());
        occupier.Start();
        var port = ((IPEndPoint)occupier.LocalEndpoint).Port;

        await using var server = StartServer(port);
        var exitCode = await server.WaitForExitAsync(TimeSpan.FromSeconds(90));

        Assert.Equal(1, exitCode);
        Assert.Contains($"http_port {port} is already in use", server.Output);
        Assert.Empty(await Processes.WaitUntilNoneMentionAsync(DataDir, TimeSpan.FromSeconds(10)));
    }
}
