using System.IO.Compression;
using System.Text;
using Loomworks.Backups;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

public sealed class DatabaseManagerTests(PostgresFixture pg)
{
    [Fact]
    public async Task Zip_backup_restores_as_a_new_tenant_with_rows_files_new_uuid_and_neutralized()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-zip");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");

        using (var zip = ZipFile.OpenRead(zipPath))
        {
            Assert.Equal(["manifest.json", "dump.sql"], zip.Entries.Take(2).Select(e => e.FullName));
            Assert.Equal(2, zip.Entries.Count(e => e.FullName.StartsWith("filestore/", StringComparison.Ordinal)));
            using var reader = new StreamReader(zip.GetEntry("manifest.json")!.Open());
            var manifest = BackupManifest.Parse(Encoding.UTF8.GetBytes(await reader.ReadToEndAsync()));
            Assert.Equal(source, manifest.DbName);
            Assert.Equal(5, manifest.SchemaVersion);
            Assert.StartsWith("15.", manifest.PgVersion, StringComparison.Ordinal);
            Assert.Equal(LoomworksVersion.Full, manifest.Version);
        }

        var restored = h.Name("restored");
        await manager.RestoreFileAsync(restored, zipPath, copy: true, neutralize: true);
        Assert.Equal(3, await h.CountAsync(restored, "SELECT count(*) FROM res_partner"));
        Assert.NotEqual("original-uuid", await h.ScalarTextAsync(restored,
            "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'"));
        Assert.Equal(0, await h.CountAsync(restored, "SELECT count(*) FROM ir_cron WHERE active"));
        Assert.Equal(0, await h.CountAsync(restored, "SELECT count(*) FROM ir_mail_server WHERE active"));
        Assert.Equal("true", await h.ScalarTextAsync(restored,
            "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"));
        Assert.Equal(h.FileStore.UsedBytes(source), h.FileStore.UsedBytes(restored));
        Assert.Equal("active", await h.TenantStateAsync(restored));
        Assert.Contains(restored, await manager.ListAsync());

        // Without copy the uuid is kept, as Odoo does.
        var same = h.Name("same");
        await manager.RestoreFileAsync(same, zipPath);
        Assert.Equal("original-uuid", await h.ScalarTextAsync(same, "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'"));
        Assert.Equal(1, await h.CountAsync(same, "SELECT count(*) FROM ir_cron WHERE active"));
    }

    [Fact]
    public async Task Custom_format_dump_round_trips_through_a_stream()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-custom");
        var source = await h.SeedAsync("src", partners: 50);
        var manager = h.Manager();
        using var dump = new MemoryStream();
        await manager.DumpAsync(source, dump, BackupFormat.Dump);
        Assert.Equal("PGDMP", Encoding.ASCII.GetString(dump.ToArray(), 0, 5));
        dump.Position = 0;
        var restored = h.Name("restored");
        await manager.RestoreAsync(restored, dump);
        Assert.Equal(50, await h.CountAsync(restored, "SELECT count(*) FROM res_partner"));
        Assert.Equal("active", await h.TenantStateAsync(restored));
    }

    [Fact]
    public async Task Restore_over_an_existing_name_is_refused_and_nothing_is_overwritten()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-exists");
        var source = await h.SeedAsync("src");
        var other = await h.SeedAsync("other", partners: 7);
        var manager = h.Manager();
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");
        var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(other, zipPath));
        Assert.Equal(DatabaseManagerError.AlreadyExists, e.Error);
        Assert.Contains("already exists", e.Message, StringComparison.Ordinal);
        Assert.Equal(7, await h.CountAsync(other, "SELECT count(*) FROM res_partner"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("Upper")]
    [InlineData("under_score")]
    [InlineData("1starts-with-digit")]
    [InlineData("../etc")]
    [InlineData("www")]
    [InlineData("postgres")]
    [InlineData("template1")]
    [InlineData("loomworks_mgmt")]
    [InlineData("a-name-that-is-much-too-long-for-a-subdomain-label-of-dns-rules-x")]
    public async Task Names_breaking_the_subdomain_rule_are_refused_before_anything_is_made(string name)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-names");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");
        var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(name, zipPath));
        Assert.Equal(DatabaseManagerError.InvalidName, e.Error);
        Assert.Equal(DatabaseManagerError.InvalidName,
            (await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.DuplicateAsync(source, name))).Error);
        Assert.Equal(DatabaseManagerError.InvalidName,
            (await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RenameAsync(source, name))).Error);
        Assert.True(await h.ExistsAsync(source));
    }

    [Theory]
    [InlineData("filestore/../../evil")]
    [InlineData("/etc/cron.d/evil")]
    [InlineData("filestore/aa/../../../evil")]
    [InlineData("C:/evil")]
    [InlineData("filestore\\..\\evil")]
    public async Task Zip_with_unsafe_entry_names_is_refused(string entryName)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-slip");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Update))
        {
            await using var entry = zip.CreateEntry(entryName).Open();
            await entry.WriteAsync("pwned"u8.ToArray());
        }
        var target = h.Name("target");
        var e = await h.AssertRestoreRefusedAsync(manager, target, zipPath);
        Assert.Equal(DatabaseManagerError.InvalidBackup, e.Error);
        Assert.Contains("unsafe entry name", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(h.Scratch.Path, "evil")));
    }

    [Fact]
    public async Task Zip_bomb_is_refused_by_ratio_and_by_total_size()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-bomb");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");
        var bombPath = h.Scratch.File("bomb.zip");
        File.Copy(zipPath, bombPath);
        using (var zip = ZipFile.Open(bombPath, ZipArchiveMode.Update))
        {
            await using var entry = zip.CreateEntry("filestore/00/bomb", CompressionLevel.SmallestSize).Open();
            var zeros = new byte[1 << 20];
            for (var i = 0; i < 64; i++)
            {
                await entry.WriteAsync(zeros);
            }
        }
        var target = h.Name("target");
        var ratio = await h.AssertRestoreRefusedAsync(manager, target, bombPath);
        Assert.Contains("zip bomb", ratio.Message, StringComparison.Ordinal);

        var small = h.Manager(maxBytes: 1000);
        var size = await Assert.ThrowsAsync<DatabaseManagerException>(() => small.RestoreFileAsync(target, zipPath));
        Assert.Contains("more than", size.Message, StringComparison.Ordinal);
        await h.AssertAbsentAsync(target);
    }

    [Fact]
    public async Task Truncated_zip_and_truncated_dump_are_refused_and_leave_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-trunc");
        var source = await h.SeedAsync("src", partners: 2000);
        var manager = h.Manager();
        var target = h.Name("target");
        foreach (var format in new[] { BackupFormat.Zip, BackupFormat.Dump })
        {
            var path = await h.DumpAsync(manager, source, $"backup.{format}", format);
            var bytes = await File.ReadAllBytesAsync(path);
            await File.WriteAllBytesAsync(path, bytes[..(bytes.Length * 2 / 3)]);
            var e = await h.AssertRestoreRefusedAsync(manager, target, path);
            Assert.True(e.Error is DatabaseManagerError.InvalidBackup or DatabaseManagerError.Failed, e.Message);
        }
    }

    [Fact]
    public async Task Dumps_of_another_product_or_of_a_newer_schema_are_refused_with_the_reason()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-foreign");
        var source = await h.SeedAsync("src", schemaVersion: 80);
        var target = h.Name("target");

        // Newer schema: the manifest says 80, this build knows 50.
        var manager = h.Manager(supportedSchema: 50);
        var zipPath = await h.DumpAsync(manager, source, "backup.zip");
        var newer = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, zipPath));
        Assert.Contains("newer", newer.Message, StringComparison.Ordinal);
        var dumpPath = await h.DumpAsync(manager, source, "backup.dump", BackupFormat.Dump);
        var newerDump = await h.AssertRestoreRefusedAsync(manager, target, dumpPath);
        Assert.Contains("newer", newerDump.Message, StringComparison.Ordinal);

        // An Odoo zip: manifest with odoo_dump and no marker of ours.
        var odoo = h.Scratch.File("odoo.zip");
        using (var zip = ZipFile.Open(odoo, ZipArchiveMode.Create))
        {
            await using (var m = zip.CreateEntry("manifest.json").Open())
            {
                await m.WriteAsync("""{"odoo_dump": "1", "db_name": "x", "version": "18.0"}"""u8.ToArray());
            }
            await using var d = zip.CreateEntry("dump.sql").Open();
            await d.WriteAsync("CREATE TABLE evil (id int);"u8.ToArray());
        }
        var odooError = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, odoo));
        Assert.Contains("Odoo backup", odooError.Message, StringComparison.Ordinal);

        // A custom dump of a database that is not ours.
        var foreign = h.Name("foreign");
        await pg.CreateDatabaseAsync(foreign);
        await pg.ExecuteAsync(foreign, "CREATE TABLE wp_posts (id int)");
        var foreignDump = await h.DumpAsync(manager, foreign, "foreign.dump", BackupFormat.Dump);
        var foreignError = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, foreignDump));
        Assert.Contains("not of a Loomworks database", foreignError.Message, StringComparison.Ordinal);

        // Something else entirely.
        var text = h.Scratch.File("notes.txt");
        await File.WriteAllTextAsync(text, "hello");
        var textError = await h.AssertRestoreRefusedAsync(manager, target, text);
        Assert.Contains("not a Loomworks backup", textError.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Duplicate_copies_rows_links_files_and_gives_a_new_uuid()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-dup");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var copy = h.Name("copy");
        await manager.DuplicateAsync(source, copy, neutralize: true);
        Assert.Equal(3, await h.CountAsync(copy, "SELECT count(*) FROM res_partner"));
        Assert.NotEqual("original-uuid", await h.ScalarTextAsync(copy,
            "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'"));
        Assert.Equal(0, await h.CountAsync(copy, "SELECT count(*) FROM ir_cron WHERE active"));
        Assert.Equal(1, await h.CountAsync(source, "SELECT count(*) FROM ir_cron WHERE active"));
        Assert.Equal(h.FileStore.UsedBytes(source), h.FileStore.UsedBytes(copy));
        Assert.Equal("active", await h.TenantStateAsync(copy));
        var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.DuplicateAsync(source, copy));
        Assert.Equal(DatabaseManagerError.AlreadyExists, e.Error);
        var missing = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.DuplicateAsync(h.Name("nothing"), h.Name("other")));
        Assert.Equal(DatabaseManagerError.NotFound, missing.Error);
    }

    [Fact]
    public async Task Rename_and_drop_move_and_remove_database_files_and_tenant()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "dm-ren");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var copy = h.Name("copy");
        await manager.DuplicateAsync(source, copy);
        var moved = h.Name("moved");
        await manager.RenameAsync(copy, moved);
        Assert.False(await h.ExistsAsync(copy));
        Assert.Equal(3, await h.CountAsync(moved, "SELECT count(*) FROM res_partner"));
        Assert.Equal("active", await h.TenantStateAsync(moved));
        Assert.Null(await h.TenantStateAsync(copy));
        Assert.True(h.FileStore.UsedBytes(moved) > 0);

        Assert.True(await manager.DropAsync(moved));
        await h.AssertAbsentAsync(moved);
        Assert.False(await manager.DropAsync(moved));
        Assert.True(await h.ExistsAsync(source));
    }

    public static TheoryData<string, string> CrashPoints => new()
    {
        { "restore", "started" }, { "restore", "database_created" }, { "restore", "loaded" }, { "restore", "adjusted" },
        { "restore", "files_placed" },
        { "duplicate", "started" }, { "duplicate", "database_created" }, { "duplicate", "adjusted" }, { "duplicate", "files_placed" },
        { "drop", "started" }, { "drop", "unrouted" }, { "drop", "database_dropped" }, { "drop", "files_dropped" },
        { "rename", "started" }, { "rename", "database_renamed" }, { "rename", "files_moved" },
    };

    [Theory]
    [MemberData(nameof(CrashPoints))]
    public async Task A_crash_after_any_step_is_rolled_back_or_finished_on_recovery(string kind, string step)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, $"dm-crash-{kind[..3]}-{step.Replace('_', '-')}");
        var source = await h.SeedAsync("src");
        var target = h.Name("target");
        var zipPath = h.Scratch.File("backup.zip");
        await h.Manager().DumpToFileAsync(source, zipPath);
        var point = $"{kind}:{step}";
        var crashing = h.Manager(p => { if (p == point) { throw new CrashForTestingException(p); } });
        Func<Task> operation = kind switch
        {
            "restore" => () => crashing.RestoreFileAsync(target, zipPath),
            "duplicate" => () => crashing.DuplicateAsync(source, target),
            "drop" => () => crashing.DropAsync(source),
            _ => () => crashing.RenameAsync(source, target),
        };
        await Assert.ThrowsAsync<CrashForTestingException>(operation);

        Assert.Equal(1, await h.Manager().RecoverAsync());
        Assert.Equal(0, await h.CountAsync(h.ManagementName, "SELECT count(*) FROM loomworks_db_job WHERE state = 'running'"));
        switch (kind)
        {
            case "restore" or "duplicate":
                await h.AssertAbsentAsync(target);
                Assert.True(await h.ExistsAsync(source));
                break;
            case "drop":
                await h.AssertAbsentAsync(source);
                break;
            default:
                Assert.False(await h.ExistsAsync(source));
                Assert.Equal(3, await h.CountAsync(target, "SELECT count(*) FROM res_partner"));
                Assert.True(h.FileStore.UsedBytes(target) > 0);
                break;
        }
        // The name is usable again after a rolled-back creation.
        if (kind is "restore")
        {
            await h.Manager().RestoreFileAsync(target, zipPath);
            Assert.Equal("active", await h.TenantStateAsync(target));
        }
    }
}
