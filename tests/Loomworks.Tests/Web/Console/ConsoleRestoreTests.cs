using System.Globalization;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Loomworks.Tests.Snapshots;
using Microsoft.Playwright;
using static Loomworks.Tests.Web.Console.ConsoleKit;

namespace Loomworks.Tests.Web.Console;

/// <summary>
/// Snapshots and point-in-time restores from the console, on a cluster with pgBackRest set up as the server does: a
/// restore watched on the page to its end with the data back, its undo, and a restore to just before an operation.
/// </summary>
public sealed class ConsoleRestoreTests(PitrFixture pitr, BrowserFixture browsers) : IClassFixture<PitrFixture>
{
    private static readonly PageWaitForFunctionOptions RestoreWait = new() { Timeout = 180_000, PollingInterval = 500 };

    private async Task<WebServer> StartAsync(string tenant)
    {
        var host = await LoomworksHost.StartAsync(options =>
        {
            options.Set("data_dir", pitr.DataDir)
                .Set("db_port", pitr.Settings.DbPort!.Value.ToString(CultureInfo.InvariantCulture))
                .Set("admin_passwd", WebServer.MasterPassword)
                .Set("loomworks_base_domain", WebServer.BaseDomain);
            options.Server = pitr.Server;
            options.BeforeStart = async services =>
            {
                var provisioner = (TenantProvisioner)services.GetService(typeof(TenantProvisioner))!;
                if (await pitr.Tenants.FindBySubdomainAsync(tenant, Ct) is null)
                {
                    await provisioner.CreateAsync(new TenantRequest(tenant, tenant, "admin", "admin"), CancellationToken.None);
                }
            };
        }, Ct);
        // A backup after provisioning keeps the restore selective (the new database is in its manifest).
        await pitr.Feature.Snapshots.BackupAsync("incr", Ct);
        return new WebServer(host, pitr.Settings.ManagementDatabase);
    }

    [Fact]
    public async Task A_restore_started_on_the_snapshots_page_is_watched_to_its_end_brings_the_data_back_and_can_be_undone()
    {
        await using var server = await StartAsync("wcp-main");
        var db = await DatabaseAsync(server, "wcp-main");
        var kept = await CreatePartnerAsync(server, db, "Kept partner");

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcp-main"));
        await Assertions.Expect(page.GetByText("WAL archiving is current")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "console-overview-archiving");
        await page.GotoAsync(server.TenantUrl("wcp-main") + "/console/snapshots");
        await page.GetByLabel("Name (optional)").FillAsync("before damage");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create snapshot" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Snapshot 'before damage' was taken");
        var snapshot = (await pitr.Feature.Snapshots.ListAsync("wcp-main", Ct)).Single(s => s.Name == "before damage");
        Assert.Equal("ready", (await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(60), Ct)).State);
        // A fresh GET, not a reload: reloading the answer to a form post would post the form again.
        await page.GotoAsync(server.TenantUrl("wcp-main") + "/console/snapshots");
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = "before damage" })).ToHaveCountAsync(1);
        await PageChecks.AuditAsync(page, "console-snapshots");

        var intruder = await CreatePartnerAsync(server, db, "Intruder");
        await RpcAsync(server, db, "res.partner", "unlink", new object[] { new[] { kept } });

        // A wrong confirmation restores nothing.
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GetByLabel("A snapshot").SelectOptionAsync(snapshot.Id.ToString(CultureInfo.InvariantCulture));
        await page.GetByLabel("This tenant, in place").CheckAsync();
        await page.GetByLabel("To restore in place, type this tenant's name").FillAsync("wcp-other");
        await page.GetByRole(AriaRole.Button, new() { Name = "Restore", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("type its name 'wcp-main' to confirm");

        await page.GetByLabel("A snapshot").SelectOptionAsync(snapshot.Id.ToString(CultureInfo.InvariantCulture));
        await page.GetByLabel("This tenant, in place").CheckAsync();
        await page.GetByLabel("To restore in place, type this tenant's name").FillAsync("wcp-main");
        await page.GetByRole(AriaRole.Button, new() { Name = "Restore", Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("progress")).ToBeVisibleAsync();
        await page.WaitForFunctionAsync("() => !document.querySelector('[data-result]').hidden", null, RestoreWait);
        await Assertions.Expect(page.Locator("[data-result]")).ToContainTextAsync("The restore finished");
        Assert.Equal("100", await page.Locator("progress").GetAttributeAsync("value"));
        await PageChecks.AuditAsync(page, "console-restore-done");

        Assert.Equal(1L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", kept));
        Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", intruder));

        // The session was opened before the snapshot, so the restored database still knows it.
        await page.GotoAsync(server.TenantUrl("wcp-main") + "/console/snapshots");
        Assert.EndsWith("/console/snapshots", page.Url, StringComparison.Ordinal);
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo restore" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("was undone: the database it replaced is back");
        Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", kept));
        Assert.Equal(1L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", intruder));
    }

    [Fact]
    public async Task Restore_to_just_before_an_operation_makes_a_new_tenant_without_it()
    {
        await using var server = await StartAsync("wcp-op");
        var db = await DatabaseAsync(server, "wcp-op");
        await CreatePartnerAsync(server, db, "Good partner");
        await Task.Delay(50, Ct);
        await CreatePartnerAsync(server, db, "Bad partner", session: "bad-session", agent: "rogue");
        var bad = await NewestOperationAsync(server, db);

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcp-op"));
        await page.GotoAsync(server.TenantUrl("wcp-op") + $"/console/operations/{bad}");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GetByLabel("New tenant's name").FillAsync("wcp-op-branch");
        await page.GetByRole(AriaRole.Button, new() { Name = "Restore", Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("progress")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "console-restore-progress");
        await page.WaitForFunctionAsync("() => !document.querySelector('[data-result]').hidden", null, RestoreWait);
        await Assertions.Expect(page.Locator("[data-result]")).ToContainTextAsync("'wcp-op-branch' was created");

        var branch = (await server.Service<TenantStore>().FindBySubdomainAsync("wcp-op-branch", Ct))!;
        const string count = "SELECT count(*) FROM res_partner WHERE name = $1";
        Assert.Equal(1L, await ScalarAsync<long>(server, branch.DatabaseName, count, "Good partner"));
        Assert.Equal(0L, await ScalarAsync<long>(server, branch.DatabaseName, count, "Bad partner"));
        Assert.Equal(1L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE name = 'Bad partner'"));
    }
}
