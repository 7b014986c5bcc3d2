using System.IO.Compression;
using System.Text;
using Loomworks.Backups;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Backups;

/// <summary>
/// A backup is a tenant's own file: its SQL runs as the new tenant's own role, so whatever needs more than that role
/// (a program run by the server, a superuser role, server settings, an extension, a shell escape of psql) fails, the
/// restore is refused with a message naming it, and nothing is left behind.
/// </summary>
public sealed class HostileRestoreTests(PostgresFixture pg)
{
    public static TheoryData<string, string, string> HostileStatements => new()
    {
        { "copy-program", "COPY (SELECT 1) TO PROGRAM 'touch {marker}';", "TO PROGRAM" },
        { "superuser", "CREATE ROLE {role} SUPERUSER LOGIN;", "CREATE ROLE" },
        { "alter-system", "ALTER SYSTEM SET work_mem = '77MB';", "ALTER SYSTEM" },
        { "extension", "CREATE EXTENSION pgcrypto WITH SCHEMA public;", "CREATE EXTENSION" },
        // pg_dump's own \restrict key is in the file, so the file can lift it itself.
        { "shell", "\\unrestrict {key}\n\\! touch {marker}\n\\restrict {key}", "\\unrestrict" },
    };

    [Theory]
    [MemberData(nameof(HostileStatements))]
    public async Task A_zip_whose_dump_asks_for_more_than_its_tenant_role_is_refused_and_leaves_nothing(string kind, string statement,
        string named)
    {
        await using var h = await ManagerHarness.CreateAsync(pg, $"hr-zip-{kind}");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var target = h.Name("target");
        var marker = Path.Combine(Path.GetTempPath(), $"loomworks-hostile-{Guid.NewGuid():N}");
        var role = $"hr_evil_{kind.Replace('-', '_')}";
        var good = await h.DumpAsync(manager, source, "good.zip");
        var hostile = h.Scratch.File("hostile.zip");
        await RewriteDumpAsync(good, hostile, statement.Replace("{marker}", marker, StringComparison.Ordinal)
            .Replace("{role}", role, StringComparison.Ordinal));
        try
        {
            var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, hostile));
            Assert.True(e.Error == DatabaseManagerError.InvalidBackup, e.Message);
            Assert.Contains(named, e.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(marker), "the file's command ran");
            Assert.Equal(0, await h.CountAsync("postgres", $"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"));
            Assert.Equal(0, await h.CountAsync("postgres", "SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem'"));
            await AssertNothingLeftAsync(h, target);

            // The untouched backup restores under the same name: the refusal left nothing in its way.
            await manager.RestoreFileAsync(target, good);
            Assert.Equal(3, await h.CountAsync(target, "SELECT count(*) FROM res_partner"));
        }
        finally
        {
            File.Delete(marker);
            await pg.ExecuteAsync("postgres", $"DROP ROLE IF EXISTS {role}");
            await pg.ExecuteAsync("postgres", "ALTER SYSTEM RESET work_mem");
        }
    }

    [Fact]
    public async Task A_custom_dump_whose_check_constraint_runs_a_program_is_refused_and_leaves_nothing()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "hr-custom");
        var source = await h.SeedAsync("src");
        var target = h.Name("target");
        var marker = Path.Combine(Path.GetTempPath(), $"loomworks-hostile-{Guid.NewGuid():N}");
        // pg_restore loads the rows through the constraint, which calls the function on each as whoever runs the restore.
        await pg.ExecuteAsync(source, $$"""
            CREATE FUNCTION public.harmless(n text) RETURNS boolean LANGUAGE plpgsql AS $f$
            BEGIN
                IF current_database() = '{{target}}' THEN
                    EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {{marker}}''';
                END IF;
                RETURN true;
            END $f$;
            ALTER TABLE res_partner ADD CONSTRAINT res_partner_harmless CHECK (public.harmless(name));
            """);
        var manager = h.Manager();
        var path = await h.DumpAsync(manager, source, "backup.dump", BackupFormat.Dump);
        try
        {
            var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, path));
            Assert.True(e.Error == DatabaseManagerError.InvalidBackup, e.Message);
            Assert.Contains("COPY to or from an external program", e.Message, StringComparison.Ordinal);
            Assert.Contains("public.harmless", e.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(marker), "the dump's program ran");
            await AssertNothingLeftAsync(h, target);
        }
        finally
        {
            File.Delete(marker);
        }
    }

    [Fact]
    public async Task A_restored_database_is_owned_as_a_provisioned_one_and_its_role_has_no_password_left()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "hr-shape");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var target = h.Name("target");
        var path = await h.DumpAsync(manager, source, "backup.zip");

        await manager.RestoreFileAsync(target, path, copy: true, neutralize: true);

        var role = TenantProvisioner.RoleNameFor(target);
        Assert.Equal("active", await h.TenantStateAsync(target));
        Assert.Equal(0, await h.CountAsync(target, "SELECT count(*) FROM ir_cron WHERE active"));
        Assert.Equal("postgres", await h.ScalarTextAsync("postgres",
            $"SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = '{target}'"));
        // The file's objects belong to the role that loaded them, not to the superuser.
        Assert.Equal(role, await h.ScalarTextAsync(target, "SELECT tableowner::text FROM pg_tables WHERE tablename = 'res_partner'"));
        Assert.Equal(1, await h.CountAsync("postgres", $"""
            SELECT count(*) FROM pg_authid WHERE rolname = '{role}' AND rolcanlogin AND NOT rolsuper AND NOT rolcreaterole
               AND NOT rolcreatedb AND rolpassword IS NULL
            """));
        Assert.Equal(0, await h.CountAsync("postgres",
            $"SELECT count(*) FROM pg_database WHERE datname = '{target}' AND has_database_privilege('public', oid, 'CONNECT')"));
        Assert.Equal(1, await h.CountAsync("postgres",
            $"SELECT count(*) FROM pg_database WHERE datname = '{target}' AND has_database_privilege('{role}', oid, 'CONNECT')"));
        Assert.Equal(0, await h.CountAsync("postgres",
            $"SELECT count(*) FROM pg_database WHERE datname = '{target}' AND has_database_privilege('{role}', oid, 'CREATE')"));
    }

    [Fact]
    public async Task A_dump_that_grants_its_role_to_another_or_sets_its_defaults_is_refused()
    {
        await using var h = await ManagerHarness.CreateAsync(pg, "hr-grant");
        var source = await h.SeedAsync("src");
        var manager = h.Manager();
        var target = h.Name("target");
        var good = await h.DumpAsync(manager, source, "good.zip");
        var role = TenantProvisioner.RoleNameFor(target);
        foreach (var (statement, named) in new[]
        {
            ($"GRANT \"{role}\" TO pg_monitor;", "GRANT"),
            ($"ALTER ROLE CURRENT_USER IN DATABASE \"{target}\" SET search_path = evil;", "session defaults"),
        })
        {
            var hostile = h.Scratch.File("hostile.zip");
            File.Delete(hostile);
            await RewriteDumpAsync(good, hostile, statement);
            var e = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, hostile));
            Assert.True(e.Error == DatabaseManagerError.InvalidBackup, e.Message);
            Assert.Contains(named, e.Message, StringComparison.Ordinal);
            await AssertNothingLeftAsync(h, target);
        }
    }

    private static async Task AssertNothingLeftAsync(ManagerHarness h, string target)
    {
        await h.AssertAbsentAsync(target);
        Assert.Equal(0, await h.CountAsync("postgres",
            $"SELECT count(*) FROM pg_roles WHERE rolname = '{TenantProvisioner.RoleNameFor(target)}'"));
        var spool = Path.Combine(h.Scratch.Path, "tmp");
        Assert.True(!Directory.Exists(spool) || !Directory.EnumerateFileSystemEntries(spool).Any(), "a spool file remains");
    }

    /// <summary>Copies a backup, with <paramref name="statement"/> put into its dump.sql before the first table.</summary>
    internal static async Task RewriteDumpAsync(string from, string to, string statement)
    {
        using var input = ZipFile.OpenRead(from);
        using var output = ZipFile.Open(to, ZipArchiveMode.Create);
        foreach (var entry in input.Entries)
        {
            using var buffer = new MemoryStream();
            await using (var source = entry.Open())
            {
                await source.CopyToAsync(buffer);
            }
            var bytes = buffer.ToArray();
            if (entry.FullName == "dump.sql")
            {
                var text = Encoding.UTF8.GetString(bytes);
                const string anchor = "SET row_security = off;\n";
                Assert.Contains(anchor, text, StringComparison.Ordinal);
                var key = text.Split('\n').FirstOrDefault(l => l.StartsWith("\\restrict ", StringComparison.Ordinal))?[10..] ?? "";
                bytes = Encoding.UTF8.GetBytes(text.Replace(anchor,
                    anchor + "\n" + statement.Replace("{key}", key, StringComparison.Ordinal) + "\n", StringComparison.Ordinal));
            }
            await using var target = output.CreateEntry(entry.FullName).Open();
            await target.WriteAsync(bytes);
        }
    }
}
