using System.Net;
using Loomworks.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Loomworks.Tests.Web;

/// <summary>/web/database/manager in a real browser: every action, the master password, the settings that turn it off.</summary>
public sealed class DatabaseManagerPageTests(PostgresFixture postgres, BrowserFixture browsers)
{
    private const string Manager = "/web/database/manager";

    [Fact]
    public async Task Databases_are_created_duplicated_backed_up_restored_under_a_new_name_and_deleted()
    {
        await using var server = await WebServer.StartAsync(postgres, "webman_flow", null, "wmf-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync(server.BareUrl + Manager);
        await Assertions.Expect(Row(page, "wmf-one")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "manager");

        var create = await OpenAsync(page, "create", "Create a database");
        await create.GetByLabel("Master password").FillAsync("not-the-master");
        await create.GetByLabel("Database name").FillAsync("wmf-new");
        await create.GetByLabel("Email (administrator's login)").FillAsync("boss");
        await create.GetByLabel("Password", new() { Exact = true }).FillAsync("boss-secret");
        await create.GetByRole(AriaRole.Button, new() { Name = "Create database" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("wrong master password");
        await Assertions.Expect(Row(page, "wmf-new")).ToHaveCountAsync(0);
        await PageChecks.AuditAsync(page, "manager-wrong-master");

        create = await OpenAsync(page, "create", "Create a database");
        await create.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await create.GetByLabel("Database name").FillAsync("wmf-new");
        await create.GetByLabel("Email (administrator's login)").FillAsync("boss");
        await create.GetByLabel("Password", new() { Exact = true }).FillAsync("boss-secret");
        await create.GetByLabel("Phone number").FillAsync("+32 2 555 01 02");
        await create.GetByLabel("Country").SelectOptionAsync("be");
        await create.GetByRole(AriaRole.Button, new() { Name = "Create database" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Database wmf-new created.");
        await Assertions.Expect(Row(page, "wmf-new")).ToBeVisibleAsync();
        Assert.Equal("+32 2 555 01 02", await Sql.ScalarAsync<string>(server.Postgres.Endpoint, "wmf-new",
            "SELECT phone FROM res_company ORDER BY id LIMIT 1"));

        var duplicate = await OpenAsync(page, "duplicate", "Duplicate a database");
        await duplicate.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await duplicate.GetByLabel("Database", new() { Exact = true }).SelectOptionAsync("wmf-new");
        await duplicate.GetByLabel("New name").FillAsync("wmf-dup");
        await duplicate.GetByRole(AriaRole.Button, new() { Name = "Duplicate" }).ClickAsync();
        await Assertions.Expect(Row(page, "wmf-dup")).ToBeVisibleAsync();

        var backup = await OpenAsync(page, "backup", "Back up a database");
        await backup.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await backup.GetByLabel("Database", new() { Exact = true }).SelectOptionAsync("wmf-new");
        var download = await page.RunAndWaitForDownloadAsync(() =>
            backup.GetByRole(AriaRole.Button, new() { Name = "Backup" }).ClickAsync());
        Assert.StartsWith("wmf-new_", download.SuggestedFilename, StringComparison.Ordinal);
        Assert.EndsWith(".zip", download.SuggestedFilename, StringComparison.Ordinal);
        using var scratch = new Scratch("webman");
        var archive = Path.Combine(scratch.Path, download.SuggestedFilename);
        await download.SaveAsAsync(archive);
        Assert.Equal("PK"u8.ToArray(), (await File.ReadAllBytesAsync(archive, TestContext.Current.CancellationToken))[..2]);

        var restore = await OpenAsync(page, "restore", "Restore a backup");
        await restore.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await restore.GetByLabel("Backup file (zip or dump)").SetInputFilesAsync(archive);
        await restore.GetByLabel("Database name").FillAsync("wmf-back");
        await restore.GetByRole(AriaRole.Button, new() { Name = "Restore backup" }).ClickAsync();
        await page.WaitForURLAsync("**/web/database/manager?restored=wmf-back");
        await Assertions.Expect(Row(page, "wmf-back")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "manager-restored");
        Assert.Equal("+32 2 555 01 02", await Sql.ScalarAsync<string>(server.Postgres.Endpoint, "wmf-back",
            "SELECT phone FROM res_company ORDER BY id LIMIT 1"));

        var drop = await OpenAsync(page, "drop", "Delete a database");
        await drop.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await drop.GetByLabel("Database", new() { Exact = true }).SelectOptionAsync("wmf-dup");
        await drop.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Database wmf-dup deleted.");
        await Assertions.Expect(Row(page, "wmf-dup")).ToHaveCountAsync(0);
        Assert.Equal(0L, await Sql.ScalarAsync<long>(server.Postgres.Endpoint, "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'wmf-dup'"));
    }

    [Fact]
    public async Task A_wrong_master_password_is_said_so_for_the_download_and_the_upload_and_the_password_can_be_changed()
    {
        await using var server = await WebServer.StartAsync(postgres, "webman_master", null, "wmm-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.BareUrl + Manager);

        var backup = await OpenAsync(page, "backup", "Back up a database");
        await backup.GetByLabel("Master password").FillAsync("wrong");
        await backup.GetByRole(AriaRole.Button, new() { Name = "Backup" }).ClickAsync();
        await Assertions.Expect(page.Locator("body")).ToContainTextAsync("Access Denied: wrong master password");

        await page.GotoAsync(server.BareUrl + Manager);
        var restore = await OpenAsync(page, "restore", "Restore a backup");
        using var scratch = new Scratch("webman");
        var junk = Path.Combine(scratch.Path, "junk.zip");
        await File.WriteAllTextAsync(junk, "not a backup", TestContext.Current.CancellationToken);
        await restore.GetByLabel("Master password").FillAsync("wrong");
        await restore.GetByLabel("Backup file (zip or dump)").SetInputFilesAsync(junk);
        await restore.GetByLabel("Database name").FillAsync("wmm-junk");
        await restore.GetByRole(AriaRole.Button, new() { Name = "Restore backup" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("wrong master password");
        await PageChecks.AuditAsync(page, "manager-restore-refused");

        var master = await OpenAsync(page, "master", "Set the master password");
        await master.GetByLabel("Master password", new() { Exact = true }).FillAsync(WebServer.MasterPassword);
        await master.GetByLabel("New master password").FillAsync("the-new-master");
        await master.GetByRole(AriaRole.Button, new() { Name = "Set master password" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("The master password is set.");

        var drop = await OpenAsync(page, "drop", "Delete a database");
        await drop.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await drop.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("wrong master password");
        await Assertions.Expect(Row(page, "wmm-one")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task The_page_names_the_setting_that_turns_it_off()
    {
        await using var closed = await WebServer.StartAsync(postgres, "webman_nolist",
            new Dictionary<string, string> { ["list_db"] = "False" });
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(closed.BareUrl + Manager);
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("set list_db = True in loomworks.conf");
        await Assertions.Expect(page.Locator("form")).ToHaveCountAsync(0);
        await PageChecks.AuditAsync(page, "manager-list-db-off");

        await using var unset = await WebServer.StartAsync(postgres, "webman_nomaster",
            new Dictionary<string, string> { ["admin_passwd"] = "" });
        await page.GotoAsync(unset.BareUrl + Manager);
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("set admin_passwd in loomworks.conf");
        await Assertions.Expect(page.Locator("form")).ToHaveCountAsync(0);
        await PageChecks.AuditAsync(page, "manager-no-master");
    }

    [Fact]
    public async Task Forged_and_hostile_posts_change_nothing_and_say_why()
    {
        await using var server = await WebServer.StartAsync(postgres, "webman_hostile", null, "wmh-one");
        using var client = server.Host.CreateClient(redirects: false);
        foreach (var path in new[] { Manager, "/web/database/manager/backup" })
        {
            using var forged = await client.PostAsync(path, new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["_handler"] = "drop", ["master_pwd"] = WebServer.MasterPassword, ["name"] = "wmh-one",
            }), TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }
        Assert.Equal(1L, await Sql.ScalarAsync<long>(server.Postgres.Endpoint, "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'wmh-one'"));

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.BareUrl + Manager);
        foreach (var name in new[] { new string('n', 3 * 1024 * 1024), "wmh'; DROP DATABASE \"wmh-one\"; --", "<b>x</b>" })
        {
            var create = await OpenAsync(page, "create", "Create a database");
            await create.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
            await create.EvaluateAsync("(form, name) => { const input = form.querySelector('[name=name]'); "
                + "input.removeAttribute('maxlength'); input.removeAttribute('pattern'); input.value = name; }", name);
            await create.GetByLabel("Email (administrator's login)").FillAsync("boss");
            await create.GetByLabel("Password", new() { Exact = true }).FillAsync("boss-secret");
            await create.GetByRole(AriaRole.Button, new() { Name = "Create database" }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToBeVisibleAsync();
            Assert.True(await page.Locator("body").InnerTextAsync() is { Length: < 100_000 }, "the refusal echoes the input back");
        }
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("subdomain");
        await PageChecks.AuditAsync(page, "manager-hostile");
        Assert.Equal(1L, await Sql.ScalarAsync<long>(server.Postgres.Endpoint, "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'wmh-one'"));
        using var health = await client.GetAsync("/web/health", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    private static ILocator Row(IPage page, string database) =>
        page.Locator("table tbody tr").Filter(new() { Has = page.GetByRole(AriaRole.Cell, new() { Name = database, Exact = true }) });

    /// <summary>Opens the action's section (a summary is clicked like a person would) and returns its form.</summary>
    private static async Task<ILocator> OpenAsync(IPage page, string form, string summary)
    {
        var section = page.Locator("details").Filter(new() { Has = page.Locator($"form#{form}") });
        if (await section.GetAttributeAsync("open") is null)
        {
            await section.Locator("summary", new() { HasText = summary }).ClickAsync();
        }
        return page.Locator($"form#{form}");
    }
}
