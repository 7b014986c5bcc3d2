using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Loomworks.Backups;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// The database manager on a tenant of --size MB, each beside the bare PostgreSQL tool doing the same work from the
/// same input into the same empty target: zip backup vs pg_dump, restore of a custom dump vs CREATE DATABASE +
/// pg_restore (same --jobs), restore of the zip vs CREATE DATABASE + psql of the same dump.sql (same flags), duplicate
/// vs CREATE DATABASE … TEMPLATE. The library is timed in this process; then the same three operations go through
/// Odoo's HTTP routes of a real `loomworks server` child process whose resident memory (VmRSS sampled every 20 ms,
/// and VmHWM) is read from /proc/&lt;pid&gt;/status.
/// </summary>
public sealed class DatabaseManagerScenario : IScenario
{
    private const string Tenant = "bench-tenant";
    private const string MasterPassword = "bench-master";
    private const int ClusterPort = 55620;
    private const int HttpPort = 55621;

    public string Name => "database-manager";
    public string Description =>
        "backup/restore/duplicate of a --size MB tenant (default 100), library and HTTP (server RSS), vs pg_dump/pg_restore/psql/TEMPLATE";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        await using var cluster = await ThrowawayCluster.StartAsync(
            dir => new EmbeddedClusterOptions { DataDir = Path.Combine(dir, "pg"), Port = ClusterPort, Durable = false },
                cancellationToken);
        return await MeasureAsync(cluster.Endpoint, cluster.Folder, runs, cancellationToken);
    }

    private static async Task<IReadOnlyList<ScenarioResult>> MeasureAsync(PostgresEndpoint endpoint, string dataDir, int runs,
        CancellationToken cancellationToken)
    {
        await using var dataSources = new TenantDataSources(endpoint);
        var admin = dataSources.For("postgres");
        await Exec(admin, "CREATE DATABASE \"bench-mgmt\"");
        var management = new ManagementDatabase(dataSources.For("bench-mgmt"), ManagementMigrations.All);
        await management.MigrateAsync(cancellationToken);
        var binaries = PostgresBinaries.Locate();
        var tools = new PgTools(endpoint, binaries.Directory);
        var options = new DatabaseManagerOptions { DataDir = dataDir, ManagementDatabase = "bench-mgmt" };
        var manager = new DatabaseManager(dataSources, management, new FileStore(dataDir), new TenantRegistration(management,
            new TenantLifecycle(management, dataSources, new TenancyOptions("bench-mgmt", "bench-mgmt_tpl", dataDir, null, null, null, [],
                true, true))), tools,
            options, NullLogger<DatabaseManager>.Instance);

        await Exec(admin, $"CREATE DATABASE \"{Tenant}\"");
        // Two tables with secondary indexes, about 2/3 and 1/3 of the size: something for a parallel restore to share.
        var partners = BenchRunner.SizeMb * 1024L * 1024 * 2 / 3 / 300;
        var lines = BenchRunner.SizeMb * 1024L * 1024 / 3 / 120;
        await Exec(dataSources.For(Tenant), $"""
            CREATE TABLE loomworks_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO loomworks_schema_migrations VALUES (1, 'bench');
            CREATE TABLE res_partner (id bigint PRIMARY KEY, name text, payload text);
            INSERT INTO res_partner SELECT g, 'partner ' || g, md5(g::text) || repeat(md5((g * 7)::text), 7)
                FROM generate_series(1, {partners}) g;
            CREATE INDEX res_partner_name ON res_partner (name);
            CREATE TABLE sale_order_line (id bigint PRIMARY KEY, partner_id bigint, name text, price numeric);
            INSERT INTO sale_order_line SELECT g, 1 + g % {partners}, 'line ' || md5(g::text), g % 1000 FROM generate_series(1, {lines}) g;
            CREATE INDEX sale_order_line_partner ON sale_order_line (partner_id);
            """);
        // Autovacuum goes for a fresh load of this size about a minute later: in the middle of the first library pairs (its
        // worker was seen busy through run 1's backups), never in the HTTP rows, minutes later. Done here, nobody pays for it.
        await Exec(dataSources.For(Tenant), "VACUUM (ANALYZE)");
        var size = await Scalar(admin, $"SELECT pg_database_size('{Tenant}')");
        for (var i = 0; i < 20; i++)
        {
            await manager.FileStore.StoreAsync(Tenant, new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"attachment {i} "
                + new string('a', 50_000))),
                cancellationToken);
        }
        await dataSources.EvictAsync(Tenant);

        var backup = new List<double>(); var pgDump = new List<double>();
        var restoreDump = new List<double>(); var pgRestore = new List<double>();
        var restoreZip = new List<double>(); var psql = new List<double>();
        var duplicate = new List<double>(); var template = new List<double>();
        var zip = Path.Combine(dataDir, "b.zip");
        var plain = Path.Combine(dataDir, "b.sql");
        var custom = Path.Combine(dataDir, "b.dump");
        await manager.DumpToFileAsync(Tenant, custom, BackupFormat.Dump, cancellationToken);
        // Each timed step starts from the same state: nothing dirty in shared buffers or the page cache from the one
        // before, and ours and the baseline take turns going first.
        async Task<double> Timed(Func<Task> action)
        {
            await BenchRunner.SettleAsync(admin);
            return await BenchRunner.TimeAsync(action);
        }
        async Task Pair(int run, List<double> ours, Func<Task> oursAction, Func<Task> oursCleanup, List<double> bare, Func<Task> bareAction,
            Func<Task> bareCleanup)
        {
            for (var side = 0; side < 2; side++)
            {
                if ((side + run) % 2 == 0)
                {
                    ours.Add(await Timed(oursAction));
                    await oursCleanup();
                }
                else
                {
                    bare.Add(await Timed(bareAction));
                    await bareCleanup();
                }
            }
        }
        static Task Nothing() => Task.CompletedTask;
        Task DropBaseline() => Exec(admin, "DROP DATABASE \"bench-baseline\"");
        var baselines = new Baselines(
            () => tools.RunAsync("pg_dump", ["--no-owner", "--no-acl", "-f", plain, "-d", Tenant], cancellationToken),
            async () =>
            {
                await Exec(admin, "CREATE DATABASE \"bench-baseline\" TEMPLATE template0");
                await tools.RunAsync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", "/dev/null",
                    "-d", "bench-baseline", "-f", plain], cancellationToken);
            },
            () => Exec(admin, $"CREATE DATABASE \"bench-baseline\" TEMPLATE \"{Tenant}\""),
            DropBaseline);
        var restoreArguments = DatabaseManager.PgRestoreArguments("bench-baseline", custom, options.RestoreJobs);
        // An untimed load first: the first big load of a cluster also creates its WAL segment files (zero-filled), a
        // cost later loads do not pay; without this, whichever side went first in run 1 paid for it.
        await Exec(admin, "CREATE DATABASE \"bench-baseline\" TEMPLATE template0");
        await tools.RunAsync("pg_restore", restoreArguments, cancellationToken);
        await DropBaseline();
        // The library's zip paths once, untimed, as a server that has been up a while has run them: otherwise run 1 of each
        // also pays for compiling them (measured: about 0.7 s of JIT for the backup, 0.3 s for the restore).
        await manager.DumpToFileAsync(Tenant, zip, BackupFormat.Zip, cancellationToken);
        await dataSources.EvictAsync(Tenant);
        await manager.RestoreFileAsync("bench-restored", zip, cancellationToken: cancellationToken);
        await manager.DropAsync("bench-restored", cancellationToken);
        for (var i = 0; i < runs; i++)
        {
            // The backup reads its manifest through a pooled session, which would keep the tenant busy for the bare
            // CREATE DATABASE … TEMPLATE (ours ends such sessions itself).
            await Pair(i, backup, () => manager.DumpToFileAsync(Tenant, zip, BackupFormat.Zip, cancellationToken), () =>
                dataSources.EvictAsync(Tenant),
                pgDump, baselines.PgDump, Nothing);
            await Pair(i, restoreDump, () => manager.RestoreFileAsync("bench-restored", custom, cancellationToken: cancellationToken),
                () => manager.DropAsync("bench-restored", cancellationToken),
                pgRestore, async () =>
                {
                    await Exec(admin, "CREATE DATABASE \"bench-baseline\" TEMPLATE template0");
                    await tools.RunAsync("pg_restore", restoreArguments, cancellationToken);
                }, DropBaseline);
            await Pair(i, restoreZip, () => manager.RestoreFileAsync("bench-restored", zip, cancellationToken: cancellationToken),
                () => manager.DropAsync("bench-restored", cancellationToken),
                psql, baselines.Psql, DropBaseline);
            await Pair(i, duplicate, () => manager.DuplicateAsync(Tenant, "bench-copy", cancellationToken: cancellationToken),
                () => manager.DropAsync("bench-copy", cancellationToken),
                template, baselines.Template, DropBaseline);
        }
        var tenantMb = size / (1024.0 * 1024);
        var zipMb = new FileInfo(zip).Length / (1024.0 * 1024);
        var setting = string.Create(CultureInfo.InvariantCulture,
            $"tenant {tenantMb:F0} MB; zip {zipMb:F0} MB; library in the bench process");
        var results = new List<ScenarioResult>
        {
            new("db-backup-zip", backup, pgDump, "pg_dump (plain, to file)", setting),
            new("db-restore-dump", restoreDump, pgRestore, $"CREATE DATABASE + pg_restore --jobs={options.RestoreJobs}", setting),
            new("db-restore-zip", restoreZip, psql, "CREATE DATABASE + psql --single-transaction of dump.sql", setting),
            new("db-duplicate", duplicate, template, "CREATE DATABASE … TEMPLATE", setting),
        };
        results.AddRange(await OverHttpAsync(endpoint, dataDir, admin, zip, runs, baselines, tenantMb, cancellationToken));
        return results;
    }

    /// <summary>The bare tools each operation is compared with; the HTTP rows run them again beside their own runs.</summary>
    private sealed record Baselines(Func<Task> PgDump, Func<Task> Psql, Func<Task> Template, Func<Task> Drop);

    /// <summary>
    /// Backup, restore (the zip, uploaded) and duplicate through /web/database/* of a real server process; each row
    /// notes that process's VmRSS when idle and at its highest during the operation. Each HTTP run takes turns with a
    /// run of its baseline, as the library rows do, so both meet the same state of the cluster and the machine.
    /// </summary>
    private static async Task<IReadOnlyList<ScenarioResult>> OverHttpAsync(PostgresEndpoint endpoint, string dataDir, PooledDatabase admin,
        string zip, int runs, Baselines baselines, double tenantMb, CancellationToken cancellationToken)
    {
        await using var server = await ServerProcess.StartAsync(endpoint, dataDir, cancellationToken);
        // Odoo's routes answer a change with a redirect to the manager page (which comes with the web console): not followed.
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{HttpPort}"),
            Timeout = Timeout.InfiniteTimeSpan,
        };
        // Warm: the routes, the master-password hash and the pools are set up before "idle" is read.
        await server.PostAsync(http, "/web/database/list", new StringContent("{}"), HttpStatusCode.OK, cancellationToken);
        await Task.Delay(1000, cancellationToken);
        var idle = server.RssMb();
        var backup = new Measured(server); var restore = new Measured(server); var duplicate = new Measured(server);
        var pgDump = new List<double>(); var psql = new List<double>(); var template = new List<double>();
        var downloaded = Path.Combine(dataDir, "http.zip");
        Task DropCopy() => server.PostAsync(http, "/web/database/drop", Form(("master_pwd", MasterPassword), ("name", "bench-http")),
            HttpStatusCode.Redirect, cancellationToken);
        async Task Pair(int run, Measured ours, Func<Task> oursAction, Func<Task> oursCleanup, List<double> bare, Func<Task> bareAction,
            Func<Task> bareCleanup)
        {
            for (var side = 0; side < 2; side++)
            {
                // The server's backup leaves a pooled session on the tenant, which a bare CREATE DATABASE … TEMPLATE
                // would refuse; neither side is timed ending it.
                await Exec(admin, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{Tenant}'");
                while (await Scalar(admin, $"SELECT count(*) FROM pg_stat_activity WHERE datname = '{Tenant}'") > 0)
                {
                    await Task.Delay(10, cancellationToken);
                }
                await BenchRunner.SettleAsync(admin);
                if ((side + run) % 2 == 0)
                {
                    await ours.TimeAsync(oursAction);
                    await oursCleanup();
                }
                else
                {
                    bare.Add(await BenchRunner.TimeAsync(bareAction));
                    await bareCleanup();
                }
            }
        }
        for (var i = 0; i < runs; i++)
        {
            await Pair(i, backup, async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/web/database/backup")
                {
                    Content = Form(("master_pwd", MasterPassword), ("name", Tenant), ("backup_format", "zip")),
                };
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                await server.ExpectAsync(response, HttpStatusCode.OK, cancellationToken);
                await using var file = new FileStream(downloaded, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20,
                    useAsync: true);
                await response.Content.CopyToAsync(file, cancellationToken);
            }, () => Task.CompletedTask, pgDump, baselines.PgDump, () => Task.CompletedTask);
            await Pair(i, restore, async () =>
            {
                await using var upload = new FileStream(zip, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
                using var content = new MultipartFormDataContent
                {
                    { new StringContent(MasterPassword), "master_pwd" },
                    { new StringContent("bench-http"), "name" },
                    { new StreamContent(upload, 1 << 20), "backup_file", "backup.zip" },
                };
                await server.PostAsync(http, "/web/database/restore", content, HttpStatusCode.Redirect, cancellationToken);
            }, DropCopy, psql, baselines.Psql, baselines.Drop);
            await Pair(i, duplicate, () => server.PostAsync(http, "/web/database/duplicate",
                Form(("master_pwd", MasterPassword), ("name", Tenant), ("new_name", "bench-http")), HttpStatusCode.Redirect,
                    cancellationToken),
                DropCopy, template, baselines.Template, baselines.Drop);
        }
        var hwm = server.HwmMb();
        string Note(Measured m) => string.Create(CultureInfo.InvariantCulture,
            $"tenant {tenantMb:F0} MB over HTTP; server process (pid {server.Pid}) VmRSS idle {idle:F0} MB, peak during this " +
            $"{m.PeakRss:F0} MB " +
            $"(+{m.PeakRss - idle:F0} MB; bound +150 MB); VmHWM at the end {hwm:F0} MB; baseline run beside it");
        return
        [
            new ScenarioResult("http-backup-zip", backup.Ms, pgDump, "pg_dump (plain, to file)", Note(backup)),
            new ScenarioResult("http-restore-zip", restore.Ms, psql, "CREATE DATABASE + psql --single-transaction of dump.sql",
                Note(restore)),
            new ScenarioResult("http-duplicate", duplicate.Ms, template, "CREATE DATABASE … TEMPLATE", Note(duplicate)),
        ];
    }

    private static FormUrlEncodedContent Form(params (string Key, string Value)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, string>(f.Key, f.Value)));

    private static async Task Exec(PooledDatabase dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> Scalar(PooledDatabase dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Timings of an operation with the server's highest VmRSS seen while it ran (sampled every 20 ms).</summary>
    private sealed class Measured(ServerProcess server)
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
                    PeakRss = Math.Max(PeakRss, server.RssMb());
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
            PeakRss = Math.Max(PeakRss, server.RssMb());
        }
    }

    /// <summary>The `loomworks server` built beside this bench, on the bench's cluster and data_dir, with a master password.</summary>
    private sealed class ServerProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly Queue<string> _output = new();

        private ServerProcess(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Keep(e.Data);
            process.ErrorDataReceived += (_, e) => Keep(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public int Pid => _process.Id;

        public static async Task<ServerProcess> StartAsync(PostgresEndpoint endpoint, string dataDir, CancellationToken cancellationToken)
        {
            var config = Path.Combine(dataDir, "loomworks.conf");
            await File.WriteAllTextAsync(config, string.Create(CultureInfo.InvariantCulture, $"""
                [options]
                db_host = {endpoint.Host}
                db_port = {endpoint.Port}
                db_user = {endpoint.Username}
                http_interface = 127.0.0.1
                http_port = {HttpPort}
                data_dir = {dataDir}
                loomworks_mgmt_db = bench-mgmt
                admin_passwd = {MasterPassword}
                log_level = warn

                """), cancellationToken);
            var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "loomworks"))
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = dataDir,
            };
            foreach (var argument in new[] { "server", "--config", config })
            {
                info.ArgumentList.Add(argument);
            }
            foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("LOOMWORKS_", StringComparison.Ordinal)).ToList())
            {
                info.Environment.Remove(name);
            }
            var server = new ServerProcess(Process.Start(info)!);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                if (server._process.HasExited)
                {
                    throw new InvalidOperationException($"loomworks server exited with {server._process.ExitCode}: {server.Output}");
                }
                try
                {
                    using var ready = await http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}/web/health/ready"), cancellationToken);
                    if (ready.IsSuccessStatusCode)
                    {
                        return server;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }
                if (deadline.Elapsed > TimeSpan.FromSeconds(120))
                {
                    await server.DisposeAsync();
                    throw new TimeoutException($"loomworks server not ready after 120 s: {server.Output}");
                }
                await Task.Delay(200, cancellationToken);
            }
        }

        public double RssMb() => StatusMb("VmRSS:");

        public double HwmMb() => StatusMb("VmHWM:");

        public async Task PostAsync(HttpClient http, string path, HttpContent content, HttpStatusCode expected,
            CancellationToken cancellationToken)
        {
            using var response = await http.PostAsync(path, content, cancellationToken);
            await ExpectAsync(response, expected, cancellationToken);
        }

        public async Task ExpectAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken cancellationToken)
        {
            if (response.StatusCode != expected)
            {
                throw new InvalidOperationException(
                    $"{response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}: " +
                    $"{await response.Content.ReadAsStringAsync(cancellationToken)} {Output}");
            }
        }

        private string Output
        {
            get
            {
                lock (_output)
                {
                    return string.Join('\n', _output);
                }
            }
        }

        private void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (_output)
            {
                _output.Enqueue(line);
                while (_output.Count > 40)
                {
                    _output.Dequeue();
                }
            }
        }

        private double StatusMb(string field)
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    var kib = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return long.Parse(kib, CultureInfo.InvariantCulture) / 1024.0;
                }
            }
            throw new InvalidOperationException($"/proc/{_process.Id}/status has no {field} line");
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                // SIGTERM: the server closes its sessions before the bench stops the cluster under it.
                _ = kill(_process.Id, 15);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await _process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
            _process.Dispose();
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int kill(int pid, int signal);
    }
}
