using System.Text.RegularExpressions;
using Loomworks.Tests.Infrastructure;
using Microsoft.Playwright;
using static Loomworks.Tests.Web.Console.ConsoleKit;

namespace Loomworks.Tests.Web.Console;

/// <summary>The tenant console in a real browser: records, the operations timeline, undo, redo and forced undo, API keys.</summary>
public sealed partial class ConsoleOperationsTests(PostgresFixture postgres, BrowserFixture browsers)
{
    [Fact]
    public async Task A_change_made_on_a_records_page_is_in_the_timeline_and_is_undone_and_redone_there()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_undo", null, "wco-undo");
        var db = await DatabaseAsync(server, "wco-undo");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wco-undo"));
        await Assertions.Expect(page.GetByText("Users: ")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByText("pgBackRest")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "console-overview");

        await page.GotoAsync(server.TenantUrl("wco-undo") + "/console/records");
        await PageChecks.AuditAsync(page, "console-records");
        await page.GetByRole(AriaRole.Link, new() { Name = "Partners" }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "New contact" }).ClickAsync();
        await PageChecks.AuditAsync(page, "console-record-new");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("Console Partner");
        await page.GetByLabel("Email").FillAsync("console@example.com");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create" }).ClickAsync();
        await page.WaitForURLAsync(new Regex("/console/records/res.partner/[0-9]+$"));
        var partner = long.Parse(page.Url[(page.Url.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        await PageChecks.AuditAsync(page, "console-record-form");
        await page.GetByLabel("Email").FillAsync("changed@example.com");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Saved");
        await page.GotoAsync(server.TenantUrl("wco-undo") + "/console/records/res.partner?search=Console");
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Console Partner" })).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "console-record-list");

        // The write is the newest operation: undo it from its page, then redo it by undoing the undo.
        await page.GotoAsync(server.TenantUrl("wco-undo") + "/console/operations");
        await PageChecks.AuditAsync(page, "console-operations");
        var write = await NewestOperationAsync(server, db);
        await page.GetByRole(AriaRole.Link, new() { Name = $"#{write}", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync($"Operation #{write}");
        await Assertions.Expect(page.Locator("td.after").GetByText("changed@example.com")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("td.before").GetByText("console@example.com")).ToBeVisibleAsync();
        await PageChecks.AuditAsync(page, "console-operation");
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync($"Operation #{write} was undone");
        Assert.Equal("console@example.com", await EmailAsync(server, db, partner));

        var undo = await NewestOperationAsync(server, db);
        await page.GotoAsync(server.TenantUrl("wco-undo") + $"/console/operations/{undo}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Redo" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("redone");
        Assert.Equal("changed@example.com", await EmailAsync(server, db, partner));

        // Delete from the form, then take the deletion back from the timeline: the partner returns with its id.
        await page.GotoAsync(server.TenantUrl("wco-undo") + $"/console/records/res.partner/{partner}");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await page.WaitForURLAsync("**/console/records/res.partner");
        Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", partner));
        await page.GotoAsync(server.TenantUrl("wco-undo") + $"/console/operations/{await NewestOperationAsync(server, db)}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("was undone");
        Assert.Equal("changed@example.com", await EmailAsync(server, db, partner));
    }

    [Fact]
    public async Task A_refused_undo_names_the_later_operation_and_the_forced_undo_asks_for_confirmation()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_force", null, "wco-force");
        var db = await DatabaseAsync(server, "wco-force");
        var partner = await CreatePartnerAsync(server, db, "First name");
        await RpcAsync(server, db, "res.partner", "write", new object[] { new[] { partner }, new { name = "Second name" } });
        var first = await NewestOperationAsync(server, db);
        await RpcAsync(server, db, "res.partner", "write", new object[] { new[] { partner }, new { name = "Third name" } });
        var later = await NewestOperationAsync(server, db);

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wco-force"));
        await page.GotoAsync(server.TenantUrl("wco-force") + $"/console/operations/{first}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync($"operation {later} changed");
        await PageChecks.AuditAsync(page, "console-operation-refused");
        Assert.Equal("Third name", await NameAsync(server, db, partner));

        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Force undo" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Tick the box");
        Assert.Equal("Third name", await NameAsync(server, db, partner));

        await page.GetByLabel("I understand that the later changes to these rows are overwritten").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Force undo" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("undone by force");
        Assert.Equal("First name", await NameAsync(server, db, partner));
    }

    [Fact]
    public async Task Filters_find_an_agents_session_and_undo_session_takes_all_of_it_back()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_session", null, "wco-sess");
        var db = await DatabaseAsync(server, "wco-sess");
        var started = DateTimeOffset.UtcNow.AddSeconds(-1);
        var made = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            made.Add(await CreatePartnerAsync(server, db, $"Agent partner {i}", session: "sess-42", agent: "agent-7"));
        }
        var bystander = await CreatePartnerAsync(server, db, "Made by hand");

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wco-sess"));
        await page.GotoAsync(server.TenantUrl("wco-sess") + "/console/operations");
        await page.GetByLabel("Session").FillAsync("sess-42");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Assertions.Expect(page.Locator("tbody tr")).ToHaveCountAsync(3);
        await PageChecks.AuditAsync(page, "console-operations-filtered");

        await page.GotoAsync(server.TenantUrl("wco-sess") + "/console/operations?agent=agent-7&model=res.partner");
        await Assertions.Expect(page.Locator("tbody tr")).ToHaveCountAsync(3);
        await page.GotoAsync(server.TenantUrl("wco-sess") + "/console/operations?model=sale.order");
        await Assertions.Expect(page.GetByText("No operation matches.")).ToBeVisibleAsync();
        var until = Uri.EscapeDataString(started.ToString("yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture));
        await page.GotoAsync(server.TenantUrl("wco-sess") + $"/console/operations?until={until}");
        await Assertions.Expect(page.GetByText("No operation matches.")).ToBeVisibleAsync();
        await page.GotoAsync(server.TenantUrl("wco-sess") + $"/console/operations?since={until}");
        await Assertions.Expect(page.Locator("tbody tr")).ToHaveCountAsync(4);

        await page.GotoAsync(server.TenantUrl("wco-sess") + "/console/operations?session=sess-42");
        await page.Locator("tbody tr").First.GetByRole(AriaRole.Link).First.ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo session" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("3 operation(s) of session 'sess-42' were undone");
        foreach (var id in made)
        {
            Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", id));
        }
        Assert.Equal(1L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", bystander));
    }

    [Fact]
    public async Task Pages_of_the_timeline_follow_each_other_by_keyset_newest_first_without_gap_or_overlap()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_pages", null, "wco-pages");
        var db = await DatabaseAsync(server, "wco-pages");
        for (var i = 0; i < 60; i++)
        {
            await CreatePartnerAsync(server, db, $"Paged {i}");
        }
        var expected = new List<long>();
        await using (var command = server.Service<Loomworks.Postgres.TenantDataSources>().For(db)
            .CreateCommand("SELECT id FROM loomworks_ai_operation_log ORDER BY id DESC"))
        await using (var reader = await command.ExecuteReaderAsync(Ct))
        {
            while (await reader.ReadAsync(Ct))
            {
                expected.Add(reader.GetInt64(0));
            }
        }

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wco-pages"));
        await page.GotoAsync(server.TenantUrl("wco-pages") + "/console/operations");
        var seen = new List<long>();
        seen.AddRange(await IdsOnPageAsync(page));
        Assert.Equal(50, seen.Count);
        await page.GetByRole(AriaRole.Link, new() { Name = "Older operations" }).ClickAsync();
        Assert.Contains($"before={seen[^1]}", page.Url, StringComparison.Ordinal);
        seen.AddRange(await IdsOnPageAsync(page));
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Older operations" })).ToHaveCountAsync(0);
        Assert.Equal(expected, seen);
    }

    [Fact]
    public async Task Api_keys_are_shown_once_listed_and_revoked()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_keys", null, "wco-keys");
        var db = await DatabaseAsync(server, "wco-keys");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wco-keys"));
        await page.GotoAsync(server.TenantUrl("wco-keys") + "/console/apikeys");
        await PageChecks.AuditAsync(page, "console-apikeys");
        await page.GetByLabel("Description").FillAsync("reporting agent");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create API key" }).ClickAsync();
        var key = (await page.Locator("#new-key").TextContentAsync())!.Trim();
        Assert.Matches("^[0-9a-f]{40}$", key);
        await PageChecks.AuditAsync(page, "console-apikeys-created");

        // The key works in place of the password, and the list never shows it again.
        var uid = (await RpcAsync(server, db, "res.partner", "search_count", new object[] { Array.Empty<object>() }, password: key));
        Assert.True(uid.GetInt64() > 0);
        await page.GotoAsync(server.TenantUrl("wco-keys") + "/console/apikeys");
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = "reporting agent", Exact = true })).ToBeVisibleAsync();
        Assert.DoesNotContain(key, await page.ContentAsync(), StringComparison.Ordinal);

        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke reporting agent" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("revoked");
        Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_users_apikeys"));
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RpcAsync(server, db, "res.partner", "search_count", new object[] { Array.Empty<object>() }, password: key));
    }

    private static async Task<List<long>> IdsOnPageAsync(IPage page)
    {
        var ids = new List<long>();
        foreach (var link in await page.Locator("tbody tr td:first-child a").AllTextContentsAsync())
        {
            ids.Add(long.Parse(link.TrimStart('#'), System.Globalization.CultureInfo.InvariantCulture));
        }
        return ids;
    }

    private static Task<string?> EmailAsync(WebServer server, string db, long partner) =>
        ScalarAsync<string>(server, db, "SELECT email FROM res_partner WHERE id = $1", (int)partner);

    private static Task<string?> NameAsync(WebServer server, string db, long partner) =>
        ScalarAsync<string>(server, db, "SELECT name FROM res_partner WHERE id = $1", (int)partner);
}
