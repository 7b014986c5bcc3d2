using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Tenancy;
using Npgsql;

namespace Loomworks.Tests.Postgres;

/// <summary>
/// The connection budget on a real server: one budget for every database, idle connections reused by database, the
/// idle ones of the database idle longest closed (and gone from PostgreSQL) to make room, a connection in use never
/// taken, and nothing stale handed out after PostgreSQL ended every session. Each test counts only its own databases.
/// </summary>
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

    private async Task<NpgsqlConnection> MonitorAsync()
    {
        var monitor = new NpgsqlConnection(postgres.Endpoint.ConnectionString("postgres", "tds-monitor") + ";Pooling=false");
        await monitor.OpenAsync(Ct);
        return monitor;
    }

    private static async Task<int> SessionsInAsync(NpgsqlConnection monitor, IReadOnlyList<string> databases)
    {
        await using var command = new NpgsqlCommand("SELECT count(*)::int FROM pg_stat_activity WHERE datname = ANY($1)", monitor);
        command.Parameters.AddWithValue(databases.ToArray());
        return (int)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task<List<int>> SessionPidsAsync(NpgsqlConnection monitor, IReadOnlyList<string> databases)
    {
        await using var command = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)", monitor);
        command.Parameters.AddWithValue(databases.ToArray());
        await using var reader = await command.ExecuteReaderAsync(Ct);
        List<int> pids = [];
        while (await reader.ReadAsync(Ct))
        {
            pids.Add(reader.GetInt32(0));
        }
        return pids;
    }

    private static async Task<bool> BackendExistsAsync(NpgsqlConnection monitor, int pid)
    {
        await using var command = new NpgsqlCommand("SELECT count(*)::int FROM pg_stat_activity WHERE pid = $1", monitor);
        command.Parameters.AddWithValue(pid);
        return (int)(await command.ExecuteScalarAsync(Ct))! == 1;
    }

    private static async Task<int> UseOnceAsync(TenantDataSources dataSources, string database)
    {
        await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        return (int)(await command.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task More_busy_databases_than_connections_all_get_served_and_PostgreSQL_never_sees_more_than_the_budget()
    {
        var databases = await CreateDatabasesAsync("tds_busy", 9);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 6);
        await using var monitor = await MonitorAsync();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var peak = 0;
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                // pg_stat_activity is copied slot by slot, so one read can catch a backend that is leaving beside
                // the one that replaced it; a session counts only when two reads in a row both see it.
                var first = await SessionPidsAsync(monitor, databases);
                var second = await SessionPidsAsync(monitor, databases);
                peak = Math.Max(peak, first.Intersect(second).Count());
            }
        }, CancellationToken.None);

        // Six callers at a time over nine databases: more callers than pooled connections, more databases than either.
        var served = databases.ToDictionary(d => d, _ => 0);
        var workers = Enumerable.Range(0, 6).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 30; i++)
            {
                var database = databases[(worker + i * 6) % databases.Length];
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
        Assert.InRange(peak, 1, dataSources.PooledConnections);
        Assert.True(dataSources.Evictions > 0, "nine databases cannot share four connections without closing idle ones");
        Assert.InRange(dataSources.Held, 0, dataSources.PooledConnections);
    }

    [Fact]
    public async Task More_callers_than_connections_wait_for_their_own_database_instead_of_churning_sessions()
    {
        var databases = await CreateDatabasesAsync("tds_no_churn", 4);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 6);
        foreach (var database in databases)
        {
            await UseOnceAsync(dataSources, database);
        }
        var opened = dataSources.Opened;

        // Three callers per database, twelve in all, on four pooled connections: each waits for its database's own.
        var workers = databases.SelectMany(database => Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 15; i++)
            {
                await using var connection = await dataSources.For(database).OpenConnectionAsync(Ct);
                await using var command = new NpgsqlCommand("SELECT current_database() FROM pg_sleep(0.003)", connection);
                Assert.Equal(database, await command.ExecuteScalarAsync(Ct));
            }
        }, Ct))).ToList();
        await Task.WhenAll(workers);

        Assert.Equal(opened, dataSources.Opened);
        Assert.Equal(0, dataSources.Evictions);
    }

    [Fact]
    public async Task A_database_used_again_and_again_reuses_its_idle_connection()
    {
        var database = await postgres.CreateDatabaseAsync("tds_reuse");
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 6);

        var pids = new HashSet<int>();
        for (var i = 0; i < 20; i++)
        {
            pids.Add(await UseOnceAsync(dataSources, database));
        }

        Assert.Single(pids);
        Assert.Equal(1, dataSources.Opened);
    }

    [Fact]
    public async Task When_the_budget_is_spent_the_database_idle_longest_gives_up_its_connection_and_PostgreSQL_has_let_it_go()
    {
        var databases = await CreateDatabasesAsync("tds_oldest", 3);
        // Four connections: two reserved, two pooled.
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 4);
        await using var monitor = await MonitorAsync();
        var oldest = await UseOnceAsync(dataSources, databases[0]);
        var newer = await UseOnceAsync(dataSources, databases[1]);

        var third = await UseOnceAsync(dataSources, databases[2]);

        Assert.False(await BackendExistsAsync(monitor, oldest), "the idle connection of the database idle longest is closed");
        Assert.True(await BackendExistsAsync(monitor, newer), "the newer idle connection stays");
        Assert.True(await BackendExistsAsync(monitor, third));
        Assert.Equal(1, dataSources.Evictions);
        Assert.Equal(newer, await UseOnceAsync(dataSources, databases[1]));
    }

    [Fact]
    public async Task A_connection_in_use_is_never_taken_and_a_caller_waits_for_one_to_come_back()
    {
        var databases = await CreateDatabasesAsync("tds_in_use", 3);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 4);
        await using var first = await dataSources.For(databases[0]).OpenConnectionAsync(Ct);
        await using var second = await dataSources.For(databases[1]).OpenConnectionAsync(Ct);

        var waiting = UseOnceAsync(dataSources, databases[2]);
        await Task.Delay(200, Ct);
        Assert.False(waiting.IsCompleted, "both pooled connections are busy: the third caller waits");
        await using (var command = new NpgsqlCommand("SELECT current_database()", first))
        {
            Assert.Equal(databases[0], await command.ExecuteScalarAsync(Ct));
        }
        await second.DisposeAsync();

        await waiting.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await using (var command = new NpgsqlCommand("SELECT current_database()", first))
        {
            Assert.Equal(databases[0], await command.ExecuteScalarAsync(Ct));
        }
    }

    [Fact]
    public async Task A_caller_that_cannot_get_a_connection_in_time_gets_an_error_naming_db_maxconn_and_the_budget_stays_whole()
    {
        var databases = await CreateDatabasesAsync("tds_timeout", 3);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 4,
            waitTimeout: TimeSpan.FromMilliseconds(300));
        var first = await dataSources.For(databases[0]).OpenConnectionAsync(Ct);
        await using var second = await dataSources.For(databases[1]).OpenConnectionAsync(Ct);

        var refused = await Assert.ThrowsAsync<NpgsqlException>(() => UseOnceAsync(dataSources, databases[2]));
        Assert.Contains("db_maxconn", refused.Message, StringComparison.Ordinal);
        Assert.Contains(databases[2], refused.Message, StringComparison.Ordinal);

        await first.DisposeAsync();
        await UseOnceAsync(dataSources, databases[2]);
        Assert.InRange(dataSources.Held, 1, dataSources.PooledConnections);
    }

    [Fact]
    public async Task A_cancelled_wait_leaves_the_queue_and_takes_no_connection()
    {
        var databases = await CreateDatabasesAsync("tds_cancel", 3);
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 4);
        var first = await dataSources.For(databases[0]).OpenConnectionAsync(Ct);
        await using var second = await dataSources.For(databases[1]).OpenConnectionAsync(Ct);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => dataSources.For(databases[2]).OpenConnectionAsync(cancel.Token));

        await first.DisposeAsync();
        Assert.NotEqual(0, await UseOnceAsync(dataSources, databases[2]));
        Assert.NotEqual(0, await UseOnceAsync(dataSources, databases[0]));
    }

    [Fact]
    public async Task Evicting_a_database_before_a_drop_leaves_it_no_session()
    {
        var database = await postgres.CreateDatabaseAsync("tds_evict");
        await using var dataSources = new TenantDataSources(postgres.Endpoint, maxConnections: 6);
        await using var monitor = await MonitorAsync();
        await UseOnceAsync(dataSources, database);

        await dataSources.EvictAsync(database);

        Assert.Equal(0, await SessionsInAsync(monitor, [database]));
        await postgres.ExecuteAsync("postgres", $"DROP DATABASE {DatabaseAdmin.QuoteIdentifier(database)}");
    }

    [Fact]
    public async Task After_PostgreSQL_ends_every_session_the_next_request_of_each_database_gets_a_live_connection()
    {
        const string mgmt = "tds_restart_mgmt";
        var databases = await CreateDatabasesAsync("tds_restart", 2);
        await using var host = await TenancyHost.StartAsync(postgres, mgmt);
        var dataSources = host.Get<TenantDataSources>();
        var listener = host.Get<TenantChangeListener>();
        foreach (var database in databases)
        {
            await UseOnceAsync(dataSources, database);
        }
        var connects = listener.Connects;

        // What a restart does to this instance's sessions: every one ends, the listener's and the idle pooled ones.
        await postgres.ExecuteAsync("postgres", $"""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname IN ('{databases[0]}', '{databases[1]}') OR application_name = '{listener.ApplicationName}'
            """);
        await Eventually.HoldsAsync(() => Task.FromResult(listener.Connects > connects), "the listener reconnects",
            TimeSpan.FromSeconds(10));

        foreach (var database in databases)
        {
            Assert.NotEqual(0, await UseOnceAsync(dataSources, database));
        }
    }
}
