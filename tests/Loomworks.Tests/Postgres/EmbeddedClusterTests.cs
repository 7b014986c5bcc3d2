using System.Diagnostics;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Postgres;

/// <summary>The embedded cluster's own recovery paths: stale pid files, half-made initdb, occupied ports.</summary>
public sealed class EmbeddedClusterTests : IDisposable
{
    private readonly Scratch _scratch = new("emb");

    public void Dispose() => _scratch.Dispose();

    private EmbeddedCluster NewCluster() =>
        new(new EmbeddedClusterOptions { DataDir = _scratch.Path, Port = Scratch.FreePort(), Durable = false });

    private static async Task<string> ServerSettingAsync(EmbeddedCluster cluster, string setting)
    {
        await using var connection = new NpgsqlConnection(cluster.Endpoint.ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SHOW {setting}", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task First_start_creates_a_cluster_ready_for_point_in_time_recovery_running_as_postgres()
    {
        var cluster = NewCluster();
        await cluster.StartAsync();
        try
        {
            Assert.Equal("on", await ServerSettingAsync(cluster, "data_checksums"));
            Assert.Equal("replica", await ServerSettingAsync(cluster, "wal_level"));
            Assert.Equal("on", await ServerSettingAsync(cluster, "archive_mode"));
            Assert.Equal("1min", await ServerSettingAsync(cluster, "archive_timeout"));
            var pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(cluster.PgData, "postmaster.pid")))[0]);
            var owner = (await File.ReadAllLinesAsync($"/proc/{pid}/status")).Single(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            Assert.Equal(OsUsers.Lookup("postgres")!.Value.Uid.ToString(), owner.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        finally
        {
            await cluster.StopAsync();
        }
        Assert.False(File.Exists(Path.Combine(cluster.PgData, "postmaster.pid")));
    }

    [Fact]
    public async Task Stale_postmaster_pid_naming_another_program_is_removed_and_the_cluster_starts()
    {
        var cluster = NewCluster();
        await cluster.StartAsync();
        var pidFile = Path.Combine(cluster.PgData, "postmaster.pid");
        var lines = await File.ReadAllLinesAsync(pidFile);
        await cluster.StopAsync();

        // What a kill -9 and a reboot leave: the file survives and its pid now belongs to someone else (us).
        lines[0] = Environment.ProcessId.ToString();
        await File.WriteAllLinesAsync(pidFile, lines);

        var restarted = NewClusterOnSamePort(cluster);
        await restarted.StartAsync();
        Assert.Equal("on", await ServerSettingAsync(restarted, "archive_mode"));
        await restarted.StopAsync();
    }

    private EmbeddedCluster NewClusterOnSamePort(EmbeddedCluster cluster) =>
        new(new EmbeddedClusterOptions { DataDir = _scratch.Path, Port = cluster.Port, Durable = false });

    [Fact]
    public async Task Postmaster_killed_hard_is_restarted_on_the_next_start()
    {
        var cluster = NewCluster();
        await cluster.StartAsync();
        var pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(cluster.PgData, "postmaster.pid")))[0]);
        using (var postmaster = Process.GetProcessById(pid))
        {
            postmaster.Kill(entireProcessTree: true);
            await postmaster.WaitForExitAsync();
        }
        await Processes.WaitUntilNoneMentionAsync(cluster.PgData, TimeSpan.FromSeconds(10));

        var restarted = NewClusterOnSamePort(cluster);
        await restarted.StartAsync();
        Assert.Equal("replica", await ServerSettingAsync(restarted, "wal_level"));
        await restarted.StopAsync();
    }

    [Fact]
    public async Task Leftover_of_an_interrupted_initdb_is_discarded()
    {
        var leftover = Path.Combine(_scratch.Path, "postgres.initdb");
        Directory.CreateDirectory(leftover);
        await File.WriteAllTextAsync(Path.Combine(leftover, "half-written"), "x");

        var cluster = NewCluster();
        await cluster.StartAsync();
        await cluster.StopAsync();

        Assert.False(Directory.Exists(leftover));
        Assert.True(File.Exists(Path.Combine(cluster.PgData, "PG_VERSION")));
    }

    [Fact]
    public async Task A_folder_that_is_not_a_cluster_is_never_overwritten()
    {
        var foreign = Path.Combine(_scratch.Path, "postgres");
        Directory.CreateDirectory(foreign);
        await File.WriteAllTextAsync(Path.Combine(foreign, "precious.txt"), "keep me");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => NewCluster().StartAsync());

        Assert.Contains("holds no PostgreSQL cluster", error.Message);
        Assert.Equal("keep me", await File.ReadAllTextAsync(Path.Combine(foreign, "precious.txt")));
    }

    [Fact]
    public async Task Occupied_port_is_a_clear_error()
    {
        using var occupier = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        occupier.Start();
        var port = ((System.Net.IPEndPoint)occupier.LocalEndpoint).Port;
        var cluster = new EmbeddedCluster(new EmbeddedClusterOptions { DataDir = _scratch.Path, Port = port, Durable = false });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => cluster.StartAsync());

        Assert.Contains($"port {port}", error.Message);
        Assert.Contains("db_port", error.Message);
    }
}
