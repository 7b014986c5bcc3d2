using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Postgres;

/// <summary>
/// The registry's connection budget on a real server: one budget of physical connections for every database, idle
/// connections reused by database, the idle ones of another database closed to make room, and a connection in use never
/// closed. Each test works in databases named after itself and counts only their sessions.
/// </summary>
[Collection(PostgresGroup.Name)]
public sealed class TenantDataSourcesTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<string[]> CreateDatabasesAsync(string prefix, int count)
    {
        var names = new string[count];
        for (var i = 0; i < count; i++)
        {
            names[i] = await postgres.CreateDatabaseAsync($"{prefix}_{i}");
        }
        return names;
    }

    private async Task<long> SessionsOfAsync(IReadOnlyList<string> databases)
    {
        await using var connection = new NpgsqlConnection(postgres.Endpoint.ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync(Ct);
        await using var command = new NpgsqlCommand(
            "SELECT coalesce(sum(sessions), 0)::bigint FROM pg_stat_database WHERE datname = ANY($1)", connection);
        command.Parameters.AddWithValue(databases.ToArray());
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task<Dictionary<string, int>> ConnectedAsync(NpgsqlConnection monitor, IReadOnlyList<string> databases)
    {
        await using var command = new NpgsqlCommand(
            "SELECT datname, count(*)::int FROM pg_stat_activity WHERE datname = ANY($1) GROUP BY datname", monitor);
        command.Parameters.AddWithValue(databases.ToArray());
        var counts = databases.ToDictionary(d => d, _ => 0);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct))
        {
            counts[reader.GetString(0)] = reader.GetInt32(1);
        }
        return counts;
    }

    private async Task<NpgsqlConnection> MonitorAsync()
    {
        var monitor = new NpgsqlConnection(postgres.Endpoint.ConnectionString("postgres") + ";Pooling=false");
        await monitor.OpenAsync(Ct);
        return monitor;
    }

    private static async Task<int> PidOfAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        return (int)(await command.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task More_busy_databases_than_the_budget_all_get_their_work_done_and_the_server_never_sees_more_than_the_budget()
    {
        const int budget = 6;
        var databases = await CreateDatabasesAsync("tds_busy_over_budget", 9);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, budget);
        await using var monitor = await MonitorAsync();

        using var done = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var peak = 0;
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                peak = Math.Max(peak, (await ConnectedAsync(monitor, databases)).Values.Sum());
                await Task.Delay(2, CancellationToken.None);
            }
        }, CancellationToken.None);

        // Four requests at a time, each worker going round all nine databases: every database stays busy and there is
        // always a connection to take over, so no open ever has to wait.
        var served = databases.ToDictionary(d => d, _ => 0);
        var workers = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 45; i++)
            {
                var database = databases[(worker + i * 4) % databases.Length];
                await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
                await using var command = new NpgsqlCommand("SELECT current_database() FROM pg_sleep(0.002)", connection);
                Assert.Equal(database, await command.ExecuteScalarAsync(Ct));
                lock (served)
                {
                    served[database]++;
                }
            }
        }, Ct)).ToList();
        await Task.WhenAll(workers);
        await done.CancelAsync();
        await sampler;

        Assert.All(served.Values, count => Assert.Equal(20, count));
        Assert.InRange(peak, 1, budget);
    }

    [Fact]
    public async Task More_concurrent_requests_than_connections_wait_their_turn_and_all_succeed()
    {
        var databases = await CreateDatabasesAsync("tds_overload", 6);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, 4);

        var workers = databases.SelectMany(database => Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
                await using var command = new NpgsqlCommand("SELECT current_database() FROM pg_sleep(0.002)", connection);
                Assert.Equal(database, await command.ExecuteScalarAsync(Ct));
            }
        }, Ct))).ToList();
        await Task.WhenAll(workers);
    }

    [Fact]
    public async Task Busy_databases_within_the_budget_keep_their_connections_instead_of_opening_one_per_request()
    {
        // Twelve databases and sixteen connections: more pools than the old registry kept open (eight), fewer
        // connections than the budget.
        var databases = await CreateDatabasesAsync("tds_busy_reuse", 12);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, 16);
        var before = await SessionsOfAsync(databases);

        for (var round = 0; round < 20; round++)
        {
            await Task.WhenAll(databases.Select(async database =>
            {
                await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(Ct);
            }));
        }

        // One session per database, opened on its first request and reused by the nineteen others.
        Assert.Equal(databases.Length, await SessionsOfAsync(databases) - before);
    }

    [Fact]
    public async Task An_idle_database_connection_is_closed_to_make_room_and_connections_in_use_are_kept()
    {
        var databases = await CreateDatabasesAsync("tds_make_room", 3);
        var (idle, busy, newcomer) = (databases[0], databases[1], databases[2]);
        // Three connections, one of them the restart watch's: the idle database's one must go for the newcomer.
        await using var dataSources = new TenantDataSources(postgres.Endpoint, 4);
        await using var monitor = await MonitorAsync();

        await using (var once = await dataSources.For(idle).OpenConnectionAsync(Ct))
        {
            await PidOfAsync(once);
        }
        await using var held1 = await dataSources.For(busy).OpenConnectionAsync(Ct);
        var heldPid = await PidOfAsync(held1);
        Assert.Equal(1, (await ConnectedAsync(monitor, databases))[idle]);

        await using var held2 = await dataSources.For(busy).OpenConnectionAsync(Ct);
        await PidOfAsync(held2);
        await using (var fresh = await dataSources.For(newcomer).OpenConnectionAsync(Ct))
        {
            await PidOfAsync(fresh);
            var connected = await ConnectedAsync(monitor, databases);
            Assert.Equal(0, connected[idle]);
            Assert.Equal(2, connected[busy]);
            Assert.Equal(1, connected[newcomer]);
        }

        // The connections in use were never touched: same backend, still answering.
        Assert.Equal(heldPid, await PidOfAsync(held1));
    }

    [Fact]
    public async Task When_every_connection_is_in_use_an_open_waits_for_one_to_come_free_and_then_fails_naming_db_maxconn()
    {
        var databases = await CreateDatabasesAsync("tds_wait", 3);
        // Two connections for pools (the restart watch has the third), a one-second wait.
        await using var dataSources = new TenantDataSources(postgres.Endpoint, 3, [], TimeSpan.FromSeconds(1));

        await using var first = await dataSources.For(databases[0]).OpenConnectionAsync(Ct);
        var firstPid = await PidOfAsync(first);
        await using var second = await dataSources.For(databases[1]).OpenConnectionAsync(Ct);
        var secondPid = await PidOfAsync(second);

        var refused = await Assert.ThrowsAnyAsync<NpgsqlException>(
            async () => await dataSources.For(databases[2]).OpenConnectionAsync(Ct));
        Assert.Contains("db_maxconn", refused.Message, StringComparison.Ordinal);
        Assert.Equal(firstPid, await PidOfAsync(first));

        // A waiter gets the room once a connection is returned.
        var waiting = dataSources.For(databases[2]).OpenConnectionAsync(Ct).AsTask();
        await Task.Delay(200, Ct);
        Assert.False(waiting.IsCompleted);
        await first.CloseAsync();
        await using var third = await waiting;
        await PidOfAsync(third);
        Assert.Equal(secondPid, await PidOfAsync(second));
    }

    [Fact]
    public async Task After_a_server_restart_the_first_request_of_every_database_succeeds()
    {
        using var scratch = new Scratch("tds-restart");
        var cluster = new EmbeddedCluster(
            new EmbeddedClusterOptions { DataDir = scratch.Path, Port = Scratch.FreePort(), Durable = false });
        await cluster.StartAsync(Ct);
        try
        {
            var databases = new[] { "tds_restart_0", "tds_restart_1", "tds_restart_2" };
            foreach (var database in databases)
            {
                await DatabaseAdmin.EnsureDatabaseAsync(cluster.Endpoint, database, Ct);
            }
            await using var dataSources = new TenantDataSources(cluster.Endpoint, 8, ["postgres"]);
            foreach (var database in databases)
            {
                await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
                await PidOfAsync(connection);
            }

            await cluster.StopAsync(Ct);
            cluster = new EmbeddedCluster(new EmbeddedClusterOptions { DataDir = scratch.Path, Port = cluster.Port, Durable = false });
            await cluster.StartAsync(Ct);

            foreach (var database in databases)
            {
                await using var command = dataSources.For(database).CreateCommand("SELECT current_database()");
                Assert.Equal(database, await command.ExecuteScalarAsync(Ct));
            }
        }
        finally
        {
            await Scratch.StopAndDeleteAsync(cluster, scratch);
        }
    }
}
