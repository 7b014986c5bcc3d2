using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tenancy;

namespace Loomworks.Tests.Snapshots;

/// <summary>Point-in-time restore of one tenant with real pgBackRest, pg_dump and pg_restore on a cluster of its own.</summary>
public sealed partial class TenantRestoreTests(PitrFixture pitr) : IClassFixture<PitrFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;

    private async Task<Tenant> TenantWithDataAsync(string subdomain)
    {
        var tenant = await pitr.CreateTenantAsync(subdomain);
        await pitr.ExecuteAsync(subdomain, """
            CREATE TABLE partner (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE invoice (id int PRIMARY KEY, partner_id int REFERENCES partner, amount numeric);
            INSERT INTO partner SELECT g, 'partner ' || g FROM generate_series(1, 200) g;
            INSERT INTO invoice SELECT g, 1 + g % 200, g * 1.5 FROM generate_series(1, 500) g;
            """);
        return tenant;
    }

    private async Task DamageAsync(string database) => await pitr.ExecuteAsync(database, """
        INSERT INTO partner VALUES (1001, 'intruder');
        UPDATE partner SET name = 'renamed' WHERE id <= 10;
        DELETE FROM invoice WHERE id > 100;
        DROP TABLE invoice;
        """);

    /// <summary>A neighbour inserting into its table hit every 5 ms until <paramref name="stop"/>; how many rows it wrote.</summary>
    private Task<int> KeepWritingAsync(string database, CancellationToken stop) => Task.Run(async () =>
    {
        var written = 0;
        while (!stop.IsCancellationRequested)
        {
            await pitr.ExecuteAsync(database, "INSERT INTO hit DEFAULT VALUES");
            written++;
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
        return written;
    }, TestContext.Current.CancellationToken);

    private async Task<RestoreJob> RestoreAsync(RestoreRequest request)
    {
        var job = await pitr.Feature.Restore.StartAsync(request, None);
        return await pitr.Feature.Restore.RunAsync(job.Id, null, None);
    }

    [Fact]
    public async Task Restore_to_a_snapshot_gives_back_its_data_while_a_neighbour_keeps_every_write_and_undo_swaps_back()
    {
        await TenantWithDataAsync("rs-main");
        await pitr.CreateTenantAsync("rs-neighbour");
        await pitr.ExecuteAsync("rs-neighbour", "CREATE TABLE hit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())");
        await pitr.Feature.Snapshots.BackupAsync("incr", None);
        var before = await pitr.ContentAsync("rs-main");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-main", "before damage", SnapshotTypes.Manual, None);
        snapshot = await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None);
        Assert.Equal("ready", snapshot.State);
        await DamageAsync("rs-main");
        var damaged = await pitr.ContentAsync("rs-main");
        Assert.NotEqual(before, damaged);

        using var stop = new CancellationTokenSource();
        var neighbour = KeepWritingAsync("rs-neighbour", stop.Token);
        var job = await RestoreAsync(new RestoreRequest("rs-main", SnapshotId: snapshot.Id));
        await stop.CancelAsync();
        var written = await neighbour;

        Assert.True(job.State == "done", job.Error);
        Assert.Equal(100, job.Progress);
        Assert.True(job.IncludeOnly, "the tenant is in the backup, so only it was restored (--db-include)");
        Assert.Equal(before, await pitr.ContentAsync("rs-main"));
        Assert.True(written > 10);
        Assert.Equal(written, (int)await pitr.ScalarAsync<long>("rs-neighbour", "SELECT count(*) FROM hit"));
        Assert.Equal(TenantStates.Active, (await pitr.Tenants.FindBySubdomainAsync("rs-main", None))!.State);
        Assert.True(await pitr.DatabaseExistsAsync(job.AsideDatabase!));
        Assert.True(pitr.ScratchIsClean());

        var undone = await pitr.Feature.Restore.UndoAsync(job.Id, None);
        Assert.Equal("undone", undone.State);
        Assert.Equal(damaged, await pitr.ContentAsync("rs-main"));
        Assert.False(await pitr.DatabaseExistsAsync(job.AsideDatabase!));
        var again = await Assert.ThrowsAsync<SnapshotException>(() => pitr.Feature.Restore.UndoAsync(job.Id, None));
        Assert.Contains("only a finished restore", again.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_table_comes_back_whole_and_the_load_keeps_its_pace_while_another_tenant_works()
    {
        // One large table for one load worker; for the other, several fed one after the other through the same input:
        // an empty one, and text that looks like the end of the rows (a lone "\.", empty strings, backslashes).
        await pitr.CreateTenantAsync("rs-paced");
        await pitr.ExecuteAsync("rs-paced", """
            CREATE TABLE large (id int PRIMARY KEY, body text NOT NULL);
            INSERT INTO large SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, 10000) g;
            CREATE TABLE nothing (id int PRIMARY KEY);
            CREATE TABLE odd (line text);
            INSERT INTO odd VALUES ('\.'), (''), ('\'), ('a\.'), (E'two\nlines'), (E'\\.'), (NULL), ('');
            CREATE TABLE small (id int PRIMARY KEY, name text);
            INSERT INTO small SELECT g, 'name ' || g FROM generate_series(1, 50) g;
            """);
        await pitr.CreateTenantAsync("rs-busy");
        await pitr.ExecuteAsync("rs-busy", "CREATE TABLE hit (id bigserial PRIMARY KEY)");
        var before = await pitr.ContentAsync("rs-paced");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-paced", null, SnapshotTypes.Manual, None);
        await pitr.ExecuteAsync("rs-paced", "DELETE FROM odd; TRUNCATE large; DROP TABLE small");

        using var stop = new CancellationTokenSource();
        var neighbour = KeepWritingAsync("rs-busy", stop.Token);
        var job = await RestoreAsync(new RestoreRequest("rs-paced", SnapshotId: snapshot.Id));
        await stop.CancelAsync();
        await neighbour;

        Assert.True(job.State == "done", job.Error);
        Assert.Equal(before, await pitr.ContentAsync("rs-paced"));
        Assert.Equal(8L, await pitr.ScalarAsync<long>("rs-paced", "SELECT count(*) FROM odd"));
        Assert.True(pitr.Feature.Restore.LastLoadPacedFor > TimeSpan.Zero, "the load kept its pace while rs-busy worked");
    }

    [Fact]
    public async Task The_scratch_copy_goes_to_memory_when_it_fits_and_to_disk_when_it_does_not()
    {
        await TenantWithDataAsync("rs-memory");
        var before = await pitr.ContentAsync("rs-memory");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-memory", null, SnapshotTypes.Manual, None);
        var restore = pitr.Feature.Restore;
        var memoryRoot = restore.MemoryRoot!;
        Assert.StartsWith("/dev/shm/loomworks-restore-", memoryRoot, StringComparison.Ordinal);
        // Folders a crash left behind: only our own job-<id> ones go, in memory as on disk.
        var stray = Directory.CreateDirectory(Path.Combine(memoryRoot, "job-999999")).FullName;
        var foreign = Directory.CreateDirectory(Path.Combine(memoryRoot, "not-a-job")).FullName;
        await restore.RecoverAsync(None);
        Assert.False(Directory.Exists(stray));
        Assert.True(Directory.Exists(foreign));
        Directory.Delete(foreign);

        string? copiedIn = null;
        var memoryAvailable = restore.MemoryAvailable;
        restore.AfterStep = step =>
        {
            if (step == RestoreSteps.FilesRestored)
            {
                copiedIn = new[] { memoryRoot, restore.ScratchRoot }.Where(Directory.Exists).SelectMany(Directory.GetDirectories)
                    .SingleOrDefault(dir => File.Exists(Path.Combine(dir, "pgdata", "PG_VERSION")));
            }
        };
        try
        {
            await DamageAsync("rs-memory");
            var inMemory = await RestoreAsync(new RestoreRequest("rs-memory", SnapshotId: snapshot.Id));
            Assert.True(inMemory.State == "done", inMemory.Error);
            Assert.Equal(Path.Combine(memoryRoot, $"job-{inMemory.Id}"), inMemory.ScratchDir);
            Assert.Equal(inMemory.ScratchDir, copiedIn);
            Assert.Equal(before, await pitr.ContentAsync("rs-memory"));
            Assert.False(Directory.Exists(memoryRoot), "the emptied memory folder is not left in /dev/shm");

            // Half of the available memory is the most a copy may take: short of that, it goes to disk.
            restore.MemoryAvailable = () => 1L << 20;
            await DamageAsync("rs-memory");
            var onDisk = await RestoreAsync(new RestoreRequest("rs-memory", SnapshotId: snapshot.Id));
            Assert.True(onDisk.State == "done", onDisk.Error);
            Assert.Equal(Path.Combine(restore.ScratchRoot, $"job-{onDisk.Id}"), onDisk.ScratchDir);
            Assert.Equal(onDisk.ScratchDir, copiedIn);
            Assert.Equal(before, await pitr.ContentAsync("rs-memory"));
            Assert.True(pitr.ScratchIsClean());
        }
        finally
        {
            restore.AfterStep = null;
            restore.MemoryAvailable = memoryAvailable;
        }
    }

    [Fact]
    public async Task Restore_to_a_time_and_to_an_LSN()
    {
        await TenantWithDataAsync("rs-time");
        var before = await pitr.ContentAsync("rs-time");
        await Task.Delay(1100, TestContext.Current.CancellationToken); // the target time falls strictly between the load and the damage
        var time = await pitr.ScalarAsync<DateTime>("postgres", "SELECT now()");
        var lsn = await pitr.ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>("postgres", "SELECT pg_current_wal_lsn()");
        await Task.Delay(1100, TestContext.Current.CancellationToken);
        await DamageAsync("rs-time");

        var byTime = await RestoreAsync(new RestoreRequest("rs-time", Time: time.ToString("O")));
        Assert.True(byTime.State == "done", byTime.Error);
        Assert.Equal(before, await pitr.ContentAsync("rs-time"));

        await DamageAsync("rs-time");
        var byLsn = await RestoreAsync(new RestoreRequest("rs-time", Lsn: lsn.ToString()));
        Assert.True(byLsn.State == "done", byLsn.Error);
        Assert.Equal(before, await pitr.ContentAsync("rs-time"));
        Assert.True(pitr.ScratchIsClean());
    }

    [Fact]
    public async Task Restore_as_a_new_tenant_leaves_the_original_alone()
    {
        await TenantWithDataAsync("rs-branch");
        var before = await pitr.ContentAsync("rs-branch");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-branch", null, SnapshotTypes.Manual, None);
        await DamageAsync("rs-branch");
        var damaged = await pitr.ContentAsync("rs-branch");
        await pitr.ExecuteAsync("postgres", "DROP DATABASE IF EXISTS \"rs-branch-copy\" WITH (FORCE)");
        await pitr.ExecuteAsync(pitr.Settings.ManagementDatabase, "DELETE FROM loomworks_tenant WHERE subdomain = 'rs-branch-copy'");

        var job = await RestoreAsync(new RestoreRequest("rs-branch", SnapshotId: snapshot.Id, AsSubdomain: "rs-branch-copy"));

        Assert.True(job.State == "done", job.Error);
        Assert.Equal(before, await pitr.ContentAsync("rs-branch-copy"));
        Assert.Equal(damaged, await pitr.ContentAsync("rs-branch"));
        var branch = await pitr.Tenants.FindBySubdomainAsync("rs-branch-copy", None);
        Assert.Equal(TenantStates.Active, branch!.State);
        var undo = await Assert.ThrowsAsync<SnapshotException>(() => pitr.Feature.Restore.UndoAsync(job.Id, None));
        Assert.Contains("new tenant", undo.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(RestoreSteps.FilesRestored)]
    [InlineData(RestoreSteps.TargetReached)]
    [InlineData(RestoreSteps.Dumped)]
    [InlineData(RestoreSteps.Loaded)]
    [InlineData(RestoreSteps.Swapped)]
    public async Task A_crash_after_any_step_is_resumed_or_rolled_back_at_the_next_start(int step)
    {
        var name = $"rs-crash-{step}";
        await TenantWithDataAsync(name);
        var before = await pitr.ContentAsync(name);
        var snapshot = await pitr.Feature.Snapshots.CreateAsync(name, null, SnapshotTypes.Manual, None);
        await DamageAsync(name);
        var damaged = await pitr.ContentAsync(name);

        var restore = pitr.Feature.Restore;
        var job = await restore.StartAsync(new RestoreRequest(name, SnapshotId: snapshot.Id), None);
        restore.AfterStep = s =>
        {
            if (s == step)
            {
                throw new SimulatedCrashException(s);
            }
        };
        try
        {
            await Assert.ThrowsAsync<SimulatedCrashException>(() => restore.RunAsync(job.Id, null, None));
        }
        finally
        {
            restore.AfterStep = null;
        }
        Assert.Equal("running", (await restore.Jobs.GetAsync(job.Id, None))!.State);

        Assert.Equal(1, await restore.RecoverAsync(None));

        var recovered = (await restore.Jobs.GetAsync(job.Id, None))!;
        if (step >= RestoreSteps.Loaded)
        {
            Assert.Equal("done", recovered.State);
            Assert.Equal(before, await pitr.ContentAsync(name));
        }
        else
        {
            Assert.Equal("failed", recovered.State);
            Assert.Contains("rolled back", recovered.Error, StringComparison.Ordinal);
            Assert.Equal(damaged, await pitr.ContentAsync(name));
        }
        Assert.False(await pitr.DatabaseExistsAsync(recovered.NewDatabase));
        Assert.Equal(TenantStates.Active, (await pitr.Tenants.FindBySubdomainAsync(name, None))!.State);
        Assert.True(pitr.ScratchIsClean(), "no scratch folder or scratch PostgreSQL is left");
    }

    [Fact]
    public async Task Bad_targets_are_refused_with_a_clear_message_and_change_nothing()
    {
        var tenant = await TenantWithDataAsync("rs-bad");
        await pitr.CreateTenantAsync("rs-bad-other");
        var before = await pitr.ContentAsync("rs-bad");
        var others = await pitr.Feature.Snapshots.CreateAsync("rs-bad-other", null, SnapshotTypes.Manual, None);
        var restore = pitr.Feature.Restore;

        async Task<SnapshotException> Refused(RestoreRequest request, SnapshotErrorKind kind, string text)
        {
            var e = await Assert.ThrowsAsync<SnapshotException>(() => restore.StartAsync(request, None));
            Assert.Equal(kind, e.Kind);
            Assert.Contains(text, e.Message, StringComparison.Ordinal);
            return e;
        }

        await Refused(new RestoreRequest("rs-bad", Time: DateTimeOffset.UtcNow.AddHours(1).ToString("O")), SnapshotErrorKind.Invalid,
            "in the future");
        await Refused(new RestoreRequest("rs-bad", Time: "2001-01-01T00:00:00Z"), SnapshotErrorKind.Invalid, "before the oldest backup");
        await Refused(new RestoreRequest("rs-bad", Lsn: "0/10"), SnapshotErrorKind.Invalid, "before the oldest backup");
        await Refused(new RestoreRequest("rs-bad", Lsn: "FFFFFFFF/0"), SnapshotErrorKind.Invalid, "in the future");
        await Refused(new RestoreRequest("rs-bad", Lsn: "'; DROP DATABASE x; --"), SnapshotErrorKind.Invalid, "is not an LSN");
        await Refused(new RestoreRequest("rs-bad", Time: new string('9', 5000)), SnapshotErrorKind.Invalid, "is not a time");
        await Refused(new RestoreRequest("rs-bad", SnapshotId: 987654321), SnapshotErrorKind.NotFound, "no snapshot 987654321");
        await Refused(new RestoreRequest("rs-bad", SnapshotId: others.Id), SnapshotErrorKind.NotFound, $"no snapshot {others.Id}");
        await Refused(new RestoreRequest("rs-bad"), SnapshotErrorKind.Invalid, "exactly one");
        await Refused(new RestoreRequest("rs-bad", Lsn: "0/10", Time: "2001-01-01"), SnapshotErrorKind.Invalid, "exactly one");
        await Refused(new RestoreRequest("no-such-tenant", Lsn: "0/10"), SnapshotErrorKind.NotFound, "no tenant");
        await Refused(new RestoreRequest("rs-bad", SnapshotId: others.Id, AsSubdomain: "Bad Name!"), SnapshotErrorKind.Invalid,
            "subdomain");
        await Refused(new RestoreRequest("rs-bad", SnapshotId: others.Id, AsSubdomain: "rs-bad-other"), SnapshotErrorKind.Conflict,
            "already exists");

        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-bad", null, SnapshotTypes.Manual, None);
        restore.FreeBytes = _ => 1024;
        try
        {
            await Refused(new RestoreRequest("rs-bad", SnapshotId: snapshot.Id), SnapshotErrorKind.Unavailable,
                "not enough free disk space");
        }
        finally
        {
            restore.FreeBytes = path => new DriveInfo(path).AvailableFreeSpace;
        }

        var first = await restore.StartAsync(new RestoreRequest("rs-bad", SnapshotId: snapshot.Id), None);
        await Refused(new RestoreRequest("rs-bad", SnapshotId: snapshot.Id), SnapshotErrorKind.Conflict, "already running");
        // The first job never ran: the next start rolls it back.
        await restore.RecoverAsync(None);
        Assert.Equal("failed", (await restore.Jobs.GetAsync(first.Id, None))!.State);

        Assert.Equal(before, await pitr.ContentAsync("rs-bad"));
        Assert.Equal(tenant.DatabaseName, (await pitr.Tenants.FindBySubdomainAsync("rs-bad", None))!.DatabaseName);
        Assert.True(pitr.ScratchIsClean());
    }

    [Fact]
    public async Task A_tenant_created_after_the_newest_backup_is_restored_without_db_include()
    {
        await TenantWithDataAsync("rs-late");
        var before = await pitr.ContentAsync("rs-late");
        var snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-late", null, SnapshotTypes.Manual, None);
        await DamageAsync("rs-late");

        var job = await RestoreAsync(new RestoreRequest("rs-late", SnapshotId: snapshot.Id));

        Assert.True(job.State == "done", job.Error);
        Assert.False(job.IncludeOnly, "a database newer than the backup's manifest needs the whole cluster");
        Assert.Equal(before, await pitr.ContentAsync("rs-late"));
        Assert.True(pitr.ScratchIsClean());
    }

    [Fact]
    public async Task A_table_drop_still_open_at_the_target_neither_blocks_the_copy_nor_reaches_it()
    {
        await TenantWithDataAsync("rs-locked");
        // Rows the load copies itself must keep odd names, skip generated columns and leave sequences to pg_restore.
        await pitr.ExecuteAsync("rs-locked", """"
            CREATE SCHEMA "Odd ""Schema""";
            CREATE TABLE "Odd ""Schema""".":name 'x'" (id int PRIMARY KEY, "Mixed Col" text,
                doubled int GENERATED ALWAYS AS (id * 2) STORED);
            INSERT INTO "Odd ""Schema""".":name 'x'" (id, "Mixed Col") SELECT g, 'tab' || chr(9) || 'back\slash '
                || g FROM generate_series(1, 50) g;
            ALTER TABLE "Odd ""Schema""".":name 'x'" DROP COLUMN "Mixed Col", ADD COLUMN "Mixed Col" text;
            UPDATE "Odd ""Schema""".":name 'x'" SET "Mixed Col" = 'tab' || chr(9) || 'back\slash ' || id;
            CREATE SEQUENCE counter;
            SELECT setval('counter', 41);
            """");
        const string odd = """"
            SELECT string_agg(id || '/' || doubled || '/' || "Mixed Col", ',' ORDER BY id) || ' next ' || nextval('counter')
            FROM "Odd ""Schema""".":name 'x'"
            """";
        var before = await pitr.ContentAsync("rs-locked");
        var cancel = TestContext.Current.CancellationToken;
        Snapshot snapshot;
        // The copy is dumped while replay is paused unless replay holds a lock there: this drop's, taken before the
        // restore point and never committed, would block pg_dump on the paused copy for ever.
        await using (var connection = await pitr.For("rs-locked").OpenConnectionAsync(cancel))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancel);
            await using (var drop = new Npgsql.NpgsqlCommand("DROP TABLE invoice", connection, transaction))
            {
                await drop.ExecuteNonQueryAsync(cancel);
            }
            snapshot = await pitr.Feature.Snapshots.CreateAsync("rs-locked", null, SnapshotTypes.Manual, None);
            snapshot = await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(30), None);
            await transaction.RollbackAsync(cancel);
        }
        await DamageAsync("rs-locked");

        var job = await RestoreAsync(new RestoreRequest("rs-locked", SnapshotId: snapshot.Id));

        Assert.True(job.State == "done", job.Error);
        Assert.Equal(before, await pitr.ContentAsync("rs-locked"));
        Assert.Equal(
            string.Join(',', Enumerable.Range(1, 50).Select(i => $"{i}/{i * 2}/tab\tback\\slash {i}")) + " next 42",
            await pitr.ScalarAsync<string>("rs-locked", odd));
        Assert.True(pitr.ScratchIsClean());
    }

    [Fact]
    public async Task A_snapshot_from_before_an_upgrade_gets_the_newer_tenant_migrations_before_the_swap()
    {
        const string name = "rs-upgrade";
        await pitr.CreateTenantAsync(name);
        var first = new Migration(1, "first", "CREATE TABLE partner (id int PRIMARY KEY, name text NOT NULL)");
        await using (var connection = await pitr.For(name).OpenConnectionAsync(None))
        {
            await SchemaMigrator.ApplyAsync(connection, [first], None);
        }
        await pitr.ExecuteAsync(name, "INSERT INTO partner SELECT g, 'partner ' || g FROM generate_series(1, 50) g");
        var role = TenantProvisioner.RoleNameFor(name);
        await pitr.ExecuteAsync("postgres",
            $"DROP ROLE IF EXISTS {DatabaseAdmin.QuoteIdentifier(role)}; CREATE ROLE {DatabaseAdmin.QuoteIdentifier(role)}");
        await pitr.Feature.Snapshots.BackupAsync("incr", None);
        var snapshot = await pitr.Feature.Snapshots.CreateAsync(name, null, SnapshotTypes.Manual, None);
        await pitr.ExecuteAsync(name, "DELETE FROM partner WHERE id > 10");

        pitr.Feature.Restore.Schema = new UpgradedSchema(
            [first, new Migration(2, "later release", "CREATE TABLE later_release_table (id int)")]);
        try
        {
            var job = await RestoreAsync(new RestoreRequest(name, SnapshotId: snapshot.Id));
            Assert.True(job.State == "done", job.Error);
        }
        finally
        {
            pitr.Feature.Restore.Schema = null;
        }

        Assert.Equal(50L, await pitr.ScalarAsync<long>(name, "SELECT count(*) FROM partner"));
        Assert.Equal("1,2", await pitr.ScalarAsync<string>(name,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM loomworks_schema_migrations"));
        Assert.True(await pitr.ScalarAsync<bool>(name, $"SELECT has_table_privilege('{role}', 'later_release_table', 'SELECT')"),
            "a table a migration added is granted to the tenant's role");
        Assert.True(pitr.ScratchIsClean());
    }

    /// <summary>Only migrations: what a later Loomworks brings to a database restored from before it.</summary>
    private sealed class UpgradedSchema(IReadOnlyList<Migration> migrations) : ITenantDatabaseSetup
    {
        public IReadOnlyList<Migration> Migrations => migrations;

        public Task CreateAdminUserAsync(Npgsql.NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct) =>
            Task.CompletedTask;

        public Task<int> CountUsersAsync(Npgsql.NpgsqlConnection tenantDatabase, CancellationToken ct) => Task.FromResult(0);
    }
}
