using Loomworks.Snapshots;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Snapshots;

/// <summary>
/// pgBackRest for an operator's own PostgreSQL server (db_host): a second cluster Loomworks does not run, set up through
/// loomworks_pg_data_dir or used through an operator's configuration, with real pgBackRest, pg_dump and pg_restore.
/// </summary>
public sealed class ExternalServerTests(ExternalClusterFixture ext) : IClassFixture<ExternalClusterFixture>
{
    private const string Schema = """
        CREATE TABLE partner (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE invoice (id int PRIMARY KEY, partner_id int REFERENCES partner, amount numeric);
        INSERT INTO partner SELECT g, 'partner ' || g FROM generate_series(1, 100) g;
        INSERT INTO invoice SELECT g, 1 + g % 100, g * 1.5 FROM generate_series(1, 300) g;
        """;

    private const string Damage = """
        INSERT INTO partner VALUES (1001, 'intruder');
        UPDATE partner SET name = 'renamed' WHERE id <= 10;
        DELETE FROM invoice WHERE id > 50;
        DROP TABLE invoice;
        """;

    private static CancellationToken None => TestContext.Current.CancellationToken;

    private string[] DoctorArguments(params string[] extra) =>
    [
        "doctor", "--data-dir", ext.LoomworksDataDir, "--db-host", ext.Cluster.SocketDir,
        "--db-port", ext.Cluster.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--db-user", "postgres",
        .. extra,
    ];

    [Fact]
    public async Task Local_server_without_archive_mode_is_refused_unchanged_then_set_up_snapshot_damage_restore_gives_the_snapshot_back()
    {
        await ext.SetAndRestartAsync("archive_mode", "off");
        var settings = ext.SettingsWith(("loomworks_pg_data_dir", ext.Cluster.PgData));
        var autoConf = ext.AutoConf();

        var refused = await ext.StartFeatureAsync(settings);
        using (refused.BackRest)
        {
            AssertNotSetUp(refused, "archive_mode is off", "ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL");
        }
        Assert.Equal(autoConf, ext.AutoConf());
        // SHOW says "(disabled)" while archive_mode is off; postgresql.auto.conf above shows nothing was set.
        Assert.Equal("0", await ext.ShowAsync("archive_timeout"));
        Assert.False(File.Exists(Path.Combine(ext.LoomworksDataDir, "pgbackrest", "pgbackrest.conf")));
        Assert.False(Directory.Exists(Path.Combine(ext.LoomworksDataDir, "backup")));

        var (doctorExit, doctor) = await LoomworksProcess.RunAsync(DoctorArguments("--loomworks-pg-data-dir", ext.Cluster.PgData));
        Assert.Equal(1, doctorExit);
        Assert.Contains("FAIL  pgbackrest archive_mode: archive_mode is off", doctor);
        Assert.Contains("fix: ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL", doctor);
        Assert.Contains("FAIL  pgbackrest archive_command: archive_command is '(disabled)'", doctor);
        Assert.Contains("FAIL  pgbackrest stanza", doctor);
        Assert.Equal(autoConf, ext.AutoConf());

        // The operator turns archiving on and restarts; the next start of Loomworks does the rest.
        await ext.SetAndRestartAsync("archive_mode", null);
        var feature = await ext.StartFeatureAsync(settings);
        using var backRest = feature.BackRest;
        Assert.True(backRest.IsConfigured, backRest.Problem);
        Assert.Equal(PgBackRestMode.LocalServer, backRest.Options.Mode);
        Assert.Equal(backRest.Options.ArchiveCommand, await ext.ShowAsync("archive_command"));
        Assert.Equal("30s", await ext.ShowAsync("archive_timeout"));
        Assert.Single(await backRest.InfoAsync(None));

        await ext.CreateTenantAsync("ext-main", Schema);
        await feature.Snapshots.BackupAsync("incr", None);
        var before = await ext.RowsAsync("ext-main", "partner", "invoice");
        var snapshot = await feature.Snapshots.CreateAsync("ext-main", "before damage", SnapshotTypes.Manual, None);
        snapshot = await feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None);
        Assert.Equal("ready", snapshot.State);
        await ext.ExecuteAsync("ext-main", Damage);
        Assert.NotEqual(before, await ext.RowsAsync("ext-main", "partner", "invoice"));

        var job = await feature.Restore.StartAsync(new RestoreRequest("ext-main", SnapshotId: snapshot.Id), None);
        job = await feature.Restore.RunAsync(job.Id, null, None);

        Assert.True(job.State == "done", job.Error);
        Assert.Equal(before, await ext.RowsAsync("ext-main", "partner", "invoice"));

        var (passExit, passed) = await LoomworksProcess.RunAsync(DoctorArguments("--loomworks-pg-data-dir", ext.Cluster.PgData));
        Assert.True(passExit == 0, passed);
        Assert.Contains("PASS  pgbackrest archive_command: pushes WAL to pgBackRest stanza loomworks", passed);
        Assert.Contains("PASS  pgbackrest stanza", passed);

        // A second start finds everything in place and changes nothing.
        var autoConfAfter = ext.AutoConf();
        var again = await ext.StartFeatureAsync(settings);
        using (again.BackRest)
        {
            Assert.True(again.BackRest.IsConfigured, again.BackRest.Problem);
        }
        Assert.Equal(autoConfAfter, ext.AutoConf());
    }

    [Fact]
    public async Task An_archive_command_of_the_operator_is_never_replaced_and_the_error_names_the_setting()
    {
        var settings = ext.SettingsWith(("loomworks_pg_data_dir", ext.Cluster.PgData), ("loomworks_pgbackrest_stanza", "other"));
        var current = await ext.ShowAsync("archive_command");
        await ext.ExecuteAsync("postgres", "ALTER SYSTEM SET archive_command = 'cp %p /srv/wal/%f'; SELECT pg_reload_conf()");
        try
        {
            await WaitForSettingAsync("archive_command", "cp %p /srv/wal/%f");
            await ext.CreateTenantAsync("ext-refused", "SELECT 1");
            var autoConf = ext.AutoConf();
            var feature = await ext.StartFeatureAsync(settings);
            using (feature.BackRest)
            {
                AssertNotSetUp(feature,
                    "archive_command is already 'cp %p /srv/wal/%f'", "ALTER SYSTEM SET archive_command = ", "loomworks_pgbackrest_config");
                var refusal = await Assert.ThrowsAsync<SnapshotException>(() =>
                    feature.Snapshots.CreateAsync("ext-refused", null, SnapshotTypes.Manual, None));
                Assert.Contains("not set up", refusal.Message);
            }
            Assert.Equal(autoConf, ext.AutoConf());
            Assert.False(Directory.Exists(Path.Combine(ext.LoomworksDataDir, "backup", "backup", "other")));
        }
        finally
        {
            await ext.ExecuteAsync("postgres",
                $"ALTER SYSTEM SET archive_command = '{current.Replace("'", "''", StringComparison.Ordinal)}'; SELECT pg_reload_conf()");
            await WaitForSettingAsync("archive_command", current);
        }
    }

    [Fact]
    public async Task Malformed_keys_turn_snapshots_off_with_an_error_naming_the_key_and_change_nothing()
    {
        var notPgData = Directory.CreateDirectory(ext.ScratchFile("not-pgdata")).FullName;
        var aFile = ext.ScratchFile("a-file");
        await File.WriteAllTextAsync(aFile, "x", None);
        var noSection = ext.ScratchFile("no-section.conf");
        await File.WriteAllTextAsync(noSection, "[global]\nrepo1-path=/nowhere\n", None);
        var binary = ext.ScratchFile("binary.conf");
        await File.WriteAllBytesAsync(binary, [0x5b, 0x6c, 0x6f, 0x0, 0xff], None);
        var cases = new (string Key, string Value, string Expected)[]
        {
            ("loomworks_pg_data_dir", "relative/pgdata", "loomworks_pg_data_dir must be an absolute path"),
            ("loomworks_pg_data_dir", "/nonexistent/pgdata", "loomworks_pg_data_dir /nonexistent/pgdata does not exist"),
            ("loomworks_pg_data_dir", notPgData, "is not a PostgreSQL data directory"),
            ("loomworks_pg_data_dir", aFile, "is a file, not a PostgreSQL data directory"),
            ("loomworks_pg_data_dir", "/" + new string('a', 4000), "loomworks_pg_data_dir /aaaa"),
            ("loomworks_pgbackrest_config", "pgbackrest.conf", "loomworks_pgbackrest_config must be an absolute path"),
            ("loomworks_pgbackrest_config", "/nonexistent/pgbackrest.conf",
                "loomworks_pgbackrest_config /nonexistent/pgbackrest.conf does not exist"),
            ("loomworks_pgbackrest_config", notPgData, "is a directory, not a pgBackRest configuration file"),
            ("loomworks_pgbackrest_config", noSection, "has no [loomworks] section: set loomworks_pgbackrest_stanza"),
            ("loomworks_pgbackrest_config", binary, "is not a pgBackRest configuration (binary content)"),
            ("loomworks_pgbackrest_stanza", "x][global", "loomworks_pgbackrest_stanza 'x][global' is not a stanza name"),
            ("loomworks_pgbackrest_stanza", "../../etc", "loomworks_pgbackrest_stanza '../../etc' is not a stanza name"),
        };
        var autoConf = ext.AutoConf();
        var archiveCommand = await ext.ShowAsync("archive_command");
        foreach (var (key, value, expected) in cases)
        {
            var extra = key == "loomworks_pgbackrest_stanza"
                ? new[] { (key, value), ("loomworks_pg_data_dir", ext.Cluster.PgData) }
                : [(key, value)];
            var feature = await ext.StartFeatureAsync(ext.SettingsWith(extra));
            using (feature.BackRest)
            {
                Assert.False(feature.BackRest.IsConfigured, key + " " + value);
                Assert.Contains(expected, feature.BackRest.Problem);
            }
        }

        var both = ext.Feature(ext.SettingsWith(("loomworks_pg_data_dir", ext.Cluster.PgData), ("loomworks_pgbackrest_config", noSection)));
        using (both.BackRest)
        {
            Assert.Contains("loomworks_pg_data_dir and loomworks_pgbackrest_config are both set", both.BackRest.Problem);
        }
        var neither = ext.Feature(ext.SettingsWith());
        using (neither.BackRest)
        {
            Assert.Equal(PgBackRestMode.None, neither.BackRest.Options.Mode);
            Assert.Contains("set loomworks_pg_data_dir", neither.BackRest.Problem);
            Assert.Contains("loomworks_pgbackrest_config", neither.BackRest.Problem);
        }
        Assert.Equal(autoConf, ext.AutoConf());
        Assert.Equal(archiveCommand, await ext.ShowAsync("archive_command"));

        var (exit, doctor) = await LoomworksProcess.RunAsync(DoctorArguments("--loomworks-pg-data-dir", "relative/pgdata"));
        Assert.Equal(1, exit);
        Assert.Contains("FAIL  pgbackrest setup: loomworks_pg_data_dir must be an absolute path, not 'relative/pgdata'", doctor);
        var (neitherExit, neitherDoctor) = await LoomworksProcess.RunAsync(DoctorArguments());
        Assert.Equal(1, neitherExit);
        Assert.Contains($"fix: set loomworks_pg_data_dir = {ext.Cluster.PgData}", neitherDoctor);
    }

    [Fact]
    public async Task An_operator_config_the_postgres_user_cannot_read_is_refused_naming_the_key()
    {
        var config = ext.ScratchFile("locked.conf");
        await File.WriteAllTextAsync(config, "[global]\nrepo1-path=/nowhere\n\n[loomworks]\npg1-path=/nowhere\n", None);
        File.SetUnixFileMode(config, UnixFileMode.None);
        var feature = await ext.StartFeatureAsync(ext.SettingsWith(("loomworks_pgbackrest_config", config)));
        using (feature.BackRest)
        {
            AssertNotSetUp(feature, $"loomworks_pgbackrest_config {config} cannot be read by the '");
        }
    }

    [Fact]
    public async Task An_operator_config_is_used_as_is_and_restores_run_here_even_when_it_names_the_server_host()
    {
        // The operator's own set-up: a repository, a stanza, and the server archiving into it.
        var repo = ext.ScratchFile("op-repo");
        foreach (var dir in new[] { repo, ext.ScratchFile("op-log"), ext.ScratchFile("op-lock") })
        {
            Directory.CreateDirectory(dir);
            Loomworks.Postgres.CommandRunner.GiveToServerUser(dir);
        }
        var stanza = $"""
            [global]
            repo1-path={repo}
            log-path={ext.ScratchFile("op-log")}
            lock-path={ext.ScratchFile("op-lock")}
            log-level-console=warn
            start-fast=y
            compress-type=lz4
            process-max=2

            [opstanza]
            pg1-path={ext.Cluster.PgData}
            pg1-socket-path={ext.Cluster.SocketDir}
            pg1-port={ext.Cluster.Port}

            """;
        var config = ext.ScratchFile("operator.conf");
        await File.WriteAllTextAsync(config, stanza, None);
        // The same stanza as a dedicated repository host sees it: the server is reached through pg1-host.
        var remoteConfig = ext.ScratchFile("operator-remote.conf");
        await File.WriteAllTextAsync(remoteConfig, stanza.TrimEnd() + "\npg1-host=db.invalid\n", None);
        var created = await Loomworks.Postgres.CommandRunner.RunAsync("/usr/bin/pgbackrest",
            ["--config=" + config, "--stanza=opstanza", "stanza-create"], Loomworks.Postgres.CommandRunner.ServerUser,
            TimeSpan.FromMinutes(2), None);
        Assert.True(created.Succeeded, created.Diagnostic);
        var previous = await ext.ShowAsync("archive_command");
        var archiveCommand = $"/usr/bin/pgbackrest --config={config} --stanza=opstanza archive-push %p";
        await ext.ExecuteAsync("postgres", $"ALTER SYSTEM SET archive_command = '{archiveCommand}'; SELECT pg_reload_conf()");
        // The operator's server archives without a timeout, whichever test of this class set one before.
        await ext.ExecuteAsync("postgres", "ALTER SYSTEM SET archive_timeout = 0; SELECT pg_reload_conf()");
        try
        {
            await WaitForSettingAsync("archive_command", archiveCommand);
            await WaitForSettingAsync("archive_timeout", "0");
            var autoConf = ext.AutoConf();
            var feature = await ext.StartFeatureAsync(ext.SettingsWith(("loomworks_pgbackrest_config", config),
                ("loomworks_pgbackrest_stanza", "opstanza")));
            using var backRest = feature.BackRest;
            Assert.True(backRest.IsConfigured, backRest.Problem);
            Assert.Equal(PgBackRestMode.OperatorConfig, backRest.Options.Mode);
            Assert.Single(await backRest.InfoAsync(None)); // the first full backup, which restores need
            Assert.Equal(autoConf, ext.AutoConf());
            Assert.Equal(stanza, await File.ReadAllTextAsync(config, None));
            Assert.False(File.Exists(Path.Combine(ext.LoomworksDataDir, "backup", "backup", "opstanza", "backup.info")));

            await ext.CreateTenantAsync("ext-op", Schema);
            await feature.Snapshots.BackupAsync("incr", None);
            var before = await ext.RowsAsync("ext-op", "partner", "invoice");
            var snapshot = await feature.Snapshots.CreateAsync("ext-op", null, SnapshotTypes.Manual, None);
            snapshot = await feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None);
            Assert.Equal("ready", snapshot.State);
            await ext.ExecuteAsync("ext-op", Damage);

            var job = await feature.Restore.StartAsync(new RestoreRequest("ext-op", SnapshotId: snapshot.Id), None);
            job = await feature.Restore.RunAsync(job.Id, null, None);
            Assert.True(job.State == "done", job.Error);
            Assert.Equal(before, await ext.RowsAsync("ext-op", "partner", "invoice"));

            // With pg1-host in the operator's file the scratch copy is still restored on this machine.
            await ext.ExecuteAsync("ext-op", Damage);
            var remote = await ext.StartFeatureAsync(ext.SettingsWith(("loomworks_pgbackrest_config", remoteConfig),
                ("loomworks_pgbackrest_stanza", "opstanza")));
            using var remoteBackRest = remote.BackRest;
            Assert.True(remoteBackRest.IsConfigured, remoteBackRest.Problem);
            var remoteJob = await remote.Restore.StartAsync(new RestoreRequest("ext-op", SnapshotId: snapshot.Id), None);
            remoteJob = await remote.Restore.RunAsync(remoteJob.Id, null, None);
            Assert.True(remoteJob.State == "done", remoteJob.Error);
            Assert.Equal(before, await ext.RowsAsync("ext-op", "partner", "invoice"));

            var (exit, doctor) = await LoomworksProcess.RunAsync(DoctorArguments("--loomworks-pgbackrest-config", config,
                "--loomworks-pgbackrest-stanza", "opstanza"));
            Assert.Equal(1, exit);
            Assert.Contains("PASS  pgbackrest stanza: 'opstanza'", doctor);
            Assert.Contains("PASS  pgbackrest archive_command: pushes WAL to pgBackRest stanza opstanza", doctor);
            // Loomworks leaves the operator's server alone; the doctor names the one setting still worth changing.
            Assert.Contains("FAIL  pgbackrest archive_timeout: archive_timeout is 0", doctor);
            Assert.Contains("fix: ALTER SYSTEM SET archive_timeout = 60; SELECT pg_reload_conf();", doctor);
        }
        finally
        {
            await ext.ExecuteAsync("postgres",
                $"ALTER SYSTEM SET archive_command = '{previous.Replace("'", "''", StringComparison.Ordinal)}'; SELECT pg_reload_conf()");
            await WaitForSettingAsync("archive_command", previous);
        }
    }

    private async Task WaitForSettingAsync(string setting, string value)
    {
        for (var i = 0; i < 100 && await ext.ShowAsync(setting) != value; i++)
        {
            await Task.Delay(50, None);
        }
        Assert.Equal(value, await ext.ShowAsync(setting));
    }

    /// <summary>The feature's start left snapshots off, and its problem names each of <paramref name="mentions"/>.</summary>
    private static void AssertNotSetUp(SnapshotsFeature feature, params string[] mentions)
    {
        Assert.False(feature.BackRest.IsConfigured, feature.BackRest.Problem);
        foreach (var mention in mentions)
        {
            Assert.Contains(mention, feature.BackRest.Problem);
        }
    }
}
