using System.Diagnostics;
using System.Globalization;
using Loomworks.Backups;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// The database manager on a tenant of --size MB: zip backup vs pg_dump alone, restore of a custom dump vs
/// CREATE DATABASE + pg_restore, duplicate vs CREATE DATABASE … TEMPLATE; with this process's resident memory.
/// </summary>
public sealed class DatabaseManagerScenario : IScenario
{
    public string Name => "database-manager";
    public string Description => "backup/restore/duplicate of a --size MB tenant (default 100) vs pg_dump/pg_restore/CREATE DATABASE TEMPLATE";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        using var scratch = new ScratchDirectory();
        var cluster = new EmbeddedCluster(new EmbeddedClusterOptions { DataDir = Path.Combine(scratch.Path, "pg"), Port = 55620, Durable = false });
        await cluster.StartAsync(cancellationToken);
        try
        {
            return await MeasureAsync(cluster.Endpoint, scratch.Path, runs, cancellationToken);
        }
        finally
        {
            await cluster.StopAsync(CancellationToken.None);
        }
    }

    private static async Task<IReadOnlyList<ScenarioResult>> MeasureAsync(PostgresEndpoint endpoint, string dataDir, int runs,
        CancellationToken cancellationToken)
    {
        await using var dataSources = new TenantDataSources(endpoint, pinned: ["bench-mgmt", "postgres"]);
        var admin = dataSources.For("postgres");
        await Exec(admin, "CREATE DATABASE \"bench-mgmt\"");
        var management = new ManagementDatabase(dataSources.For("bench-mgmt"));
        await management.MigrateAsync(cancellationToken);
        var binaries = PostgresBinaries.Locate();
        var tools = new PgTools(endpoint, binaries.Directory);
        var manager = new DatabaseManager(dataSources, management, new FileStore(dataDir), new TenantRegistration(management,
            new TenantLifecycle(management, dataSources, new TenancyOptions("bench-mgmt", "bench-mgmt_tpl", dataDir, null, null, null, [], true, true))), tools,
            new DatabaseManagerOptions { DataDir = dataDir, ManagementDatabase = "bench-mgmt" }, NullLogger<DatabaseManager>.Instance);

        const string Tenant = "bench-tenant";
        await Exec(admin, $"CREATE DATABASE \"{Tenant}\"");
        var rows = BenchRunner.SizeMb * 1024L * 1024 / 300;
        await Exec(dataSources.For(Tenant), $"""
            CREATE TABLE loomworks_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO loomworks_schema_migrations VALUES (1, 'bench');
            CREATE TABLE res_partner (id bigint PRIMARY KEY, name text, payload text);
            INSERT INTO res_partner SELECT g, 'partner ' || g, md5(g::text) || repeat(md5((g * 7)::text), 7) FROM generate_series(1, {rows}) g;
            """);
        var size = await Scalar(admin, $"SELECT pg_database_size('{Tenant}')");
        for (var i = 0; i < 20; i++)
        {
            await manager.FileStore.StoreAsync(Tenant, new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"attachment {i} " + new string('a', 50_000))),
                cancellationToken);
        }
        await dataSources.EvictAsync(Tenant);
        var idle = Rss();

        var backup = new Measured(); var pgDump = new List<double>();
        var restore = new Measured(); var pgRestore = new List<double>();
        var duplicate = new Measured(); var template = new List<double>();
        var zip = Path.Combine(dataDir, "b.zip");
        var plain = Path.Combine(dataDir, "b.sql");
        var custom = Path.Combine(dataDir, "b.dump");
        await manager.DumpToFileAsync(Tenant, custom, BackupFormat.Dump, cancellationToken);
        for (var i = 0; i < runs; i++)
        {
            await backup.TimeAsync(() => manager.DumpToFileAsync(Tenant, zip, BackupFormat.Zip, cancellationToken));
            pgDump.Add(await BenchRunner.TimeAsync(() => tools.RunAsync("pg_dump", ["--no-owner", "--no-acl", "-f", plain, "-d", Tenant], cancellationToken)));

            await restore.TimeAsync(() => manager.RestoreFileAsync("bench-restored", custom, cancellationToken: cancellationToken));
            await manager.DropAsync("bench-restored", cancellationToken);
            pgRestore.Add(await BenchRunner.TimeAsync(async () =>
            {
                await Exec(admin, "CREATE DATABASE \"bench-baseline\" TEMPLATE template0");
                await tools.RunAsync("pg_restore", ["--no-owner", "--no-acl", "--exit-on-error", "-d", "bench-baseline", custom], cancellationToken);
            }));
            await Exec(admin, "DROP DATABASE \"bench-baseline\"");

            await duplicate.TimeAsync(() => manager.DuplicateAsync(Tenant, "bench-copy", cancellationToken: cancellationToken));
            await manager.DropAsync("bench-copy", cancellationToken);
            template.Add(await BenchRunner.TimeAsync(() => Exec(admin, $"CREATE DATABASE \"bench-baseline\" TEMPLATE \"{Tenant}\"")));
            await Exec(admin, "DROP DATABASE \"bench-baseline\"");
        }
        var tenantMb = size / (1024.0 * 1024);
        string Note(Measured m) => string.Create(CultureInfo.InvariantCulture,
            $"tenant {tenantMb:F0} MB; zip {new FileInfo(zip).Length / (1024.0 * 1024):F0} MB; RSS idle {idle:F0} MB, peak {m.PeakRss:F0} MB (+{m.PeakRss - idle:F0} MB)");
        return
        [
            new ScenarioResult("db-backup-zip", backup.Ms, pgDump, "pg_dump (plain, to file)", Note(backup)),
            new ScenarioResult("db-restore-dump", restore.Ms, pgRestore, "CREATE DATABASE + pg_restore", Note(restore)),
            new ScenarioResult("db-duplicate", duplicate.Ms, template, "CREATE DATABASE … TEMPLATE", Note(duplicate)),
        ];
    }

    private static double Rss()
    {
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        return self.WorkingSet64 / (1024.0 * 1024);
    }

    private static async Task Exec(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> Scalar(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Timings of ours with the highest resident memory seen while they ran (sampled every 20 ms).</summary>
    private sealed class Measured
    {
        public List<double> Ms { get; } = [];
        public double PeakRss { get; private set; }

        public async Task TimeAsync(Func<Task> action)
        {
            using var stop = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    PeakRss = Math.Max(PeakRss, Rss());
                    try
                    {
                        await Task.Delay(20, stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            });
            Ms.Add(await BenchRunner.TimeAsync(action));
            await stop.CancelAsync();
            await sampler;
        }
    }
}
