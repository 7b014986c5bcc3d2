using System.Net;
using Loomworks.Tests.Infrastructure;
using Microsoft.Playwright;
using static Loomworks.Tests.Web.Console.ConsoleKit;

namespace Loomworks.Tests.Web.Console;

/// <summary>What the console refuses: other users' and other tenants' operations, database actions of non-administrators,
/// malformed, hostile and oversized input; each refusal says why and changes nothing.</summary>
public sealed class ConsoleBoundaryTests(PostgresFixture postgres, BrowserFixture browsers)
{
    [Fact]
    public async Task A_user_who_is_not_an_administrator_sees_only_their_own_operations_and_no_database_actions()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_clerk", null, "wcb-clerk");
        var db = await DatabaseAsync(server, "wcb-clerk");
        var clerk = await CreateClerkAsync(server, db, "clerk", "clerk-pass");
        await CreatePartnerAsync(server, db, "Made by the admin");
        var adminOperation = await NewestOperationAsync(server, db);
        var clerkPartner = (await RpcAsync(server, db, "res.partner", "create", new object[] { new { name = "Made by the clerk" } },
            uid: clerk, password: "clerk-pass")).GetInt64();
        var clerkOperation = await NewestOperationAsync(server, db);

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcb-clerk"), "clerk", "clerk-pass");
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Snapshots and restores" })).ToHaveCountAsync(0);
        await PageChecks.AuditAsync(page, "console-clerk-overview");

        await page.GotoAsync(server.TenantUrl("wcb-clerk") + "/console/operations");
        await Assertions.Expect(page.GetByText("Your own changes")).ToBeVisibleAsync();
        var shown = await page.Locator("tbody tr td:first-child a").AllTextContentsAsync();
        Assert.Contains($"#{clerkOperation}", shown);
        Assert.DoesNotContain($"#{adminOperation}", shown);
        Assert.All(shown, s => Assert.NotEqual($"#{adminOperation}", s));
        await PageChecks.AuditAsync(page, "console-clerk-operations");

        await page.GotoAsync(server.TenantUrl("wcb-clerk") + $"/console/operations/{adminOperation}");
        await Assertions.Expect(page.GetByRole(AriaRole.Alert))
            .ToHaveTextAsync($"There is no operation {adminOperation} in this tenant's log.");
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true })).ToHaveCountAsync(0);

        await page.GotoAsync(server.TenantUrl("wcb-clerk") + $"/console/operations/{clerkOperation}");
        await Assertions.Expect(page.GetByText("Restore to just before this operation")).ToHaveCountAsync(0);
        await page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("was undone");
        Assert.Equal(0L, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner WHERE id = $1", clerkPartner));

        await page.GotoAsync(server.TenantUrl("wcb-clerk") + "/console/snapshots");
        await Assertions.Expect(page.GetByRole(AriaRole.Alert))
            .ToHaveTextAsync("Only a tenant administrator may see the tenant's snapshots.");
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Create snapshot" })).ToHaveCountAsync(0);
        await PageChecks.AuditAsync(page, "console-clerk-snapshots");
    }

    [Fact]
    public async Task A_users_new_or_lost_administrator_group_shows_on_the_very_next_page()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_promote", null, "wcb-promote");
        var db = await DatabaseAsync(server, "wcb-promote");
        var clerk = await CreateClerkAsync(server, db, "clerk", "clerk-pass");
        await CreatePartnerAsync(server, db, "Made by the admin");
        var adminOperation = await NewestOperationAsync(server, db);
        var settings = await ScalarAsync<int>(server, db, "SELECT id FROM res_groups WHERE xml_id = 'base.group_system'");

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcb-promote"), "clerk", "clerk-pass");
        var operations = server.TenantUrl("wcb-promote") + "/console/operations";
        await page.GotoAsync(operations);
        await Assertions.Expect(page.GetByText("Your own changes")).ToBeVisibleAsync();
        Assert.DoesNotContain($"#{adminOperation}", await page.Locator("tbody tr td:first-child a").AllTextContentsAsync());

        // The rights a page remembers are the ones its session check's security stamp vouches for: a group given or
        // taken away moves the stamp, so the next page already sees it.
        await RpcAsync(server, db, "res.users", "write", new object[]
        {
            new[] { clerk }, new Dictionary<string, object> { ["groups_id"] = new object[] { new object[] { 4, settings } } },
        });
        await page.GotoAsync(operations);
        await Assertions.Expect(page.GetByText("Every change made in this tenant")).ToBeVisibleAsync();
        Assert.Contains($"#{adminOperation}", await page.Locator("tbody tr td:first-child a").AllTextContentsAsync());

        await RpcAsync(server, db, "res.users", "write", new object[]
        {
            new[] { clerk }, new Dictionary<string, object> { ["groups_id"] = new object[] { new object[] { 3, settings } } },
        });
        await page.GotoAsync(operations);
        await Assertions.Expect(page.GetByText("Your own changes")).ToBeVisibleAsync();
        Assert.DoesNotContain($"#{adminOperation}", await page.Locator("tbody tr td:first-child a").AllTextContentsAsync());
    }

    [Fact]
    public async Task Bogus_and_foreign_operation_ids_and_malformed_filters_are_answered_clearly()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_ids", null, "wcb-aaa", "wcb-bbb");
        var dbA = await DatabaseAsync(server, "wcb-aaa");
        var dbB = await DatabaseAsync(server, "wcb-bbb");
        await CreatePartnerAsync(server, dbA, "Only one in A");
        for (var i = 0; i < 5; i++)
        {
            await CreatePartnerAsync(server, dbB, $"B partner {i}");
        }
        var foreign = await NewestOperationAsync(server, dbB);
        Assert.True(foreign > await NewestOperationAsync(server, dbA));
        var logA = await ScalarAsync<long>(server, dbA, "SELECT count(*) FROM loomworks_ai_operation_log");

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcb-aaa"));
        var cases = new (string Path, string Message)[]
        {
            ($"/console/operations/{foreign}", $"There is no operation {foreign} in this tenant's log."),
            ("/console/operations/abc", "An operation id must be a positive whole number, not 'abc'."),
            ("/console/operations/-5", "An operation id must be a positive whole number, not '-5'."),
            ("/console/operations/99999999999999999999999", "An operation id must be a positive whole number"),
            ("/console/operations?before=x1", "The page cursor must be a positive whole number, not 'x1'."),
            ("/console/operations?since=yesterday", "From must be a date and time"),
            ("/console/operations?since=2026-02-01T00:00:00&until=2026-01-01T00:00:00", "is after until"),
            ("/console/operations?session=" + new string('s', 5000), "The session has 5000 characters; at most 200 are accepted."),
            ("/console/records/res.users", "The console has no record pages for 'res.users'."),
            ("/console/records/res.partner/0", "A record id must be a positive whole number, not '0'."),
            ("/console/records/res.partner/987654", "Record does not exist or has been deleted."),
        };
        foreach (var (path, message) in cases)
        {
            var answer = await page.GotoAsync(server.TenantUrl("wcb-aaa") + path);
            Assert.Equal((int)HttpStatusCode.OK, answer!.Status);
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync(message);
        }
        await PageChecks.AuditAsync(page, "console-refused-id");
        Assert.DoesNotContain("B partner", await page.ContentAsync(), StringComparison.Ordinal);
        Assert.Equal(logA, await ScalarAsync<long>(server, dbA, "SELECT count(*) FROM loomworks_ai_operation_log"));
    }

    [Fact]
    public async Task Oversized_and_malformed_form_fields_and_a_post_without_its_token_change_nothing()
    {
        await using var server = await WebServer.StartAsync(postgres, "webcon_forms", null, "wcb-forms");
        var db = await DatabaseAsync(server, "wcb-forms");
        var partners = await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner");
        var products = await ScalarAsync<long>(server, db, "SELECT count(*) FROM product_product");
        var log = await ScalarAsync<long>(server, db, "SELECT count(*) FROM loomworks_ai_operation_log WHERE state = 'done'");

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await SignInAsync(page, server.TenantUrl("wcb-forms"));

        // Oversized: the field's maxlength is only the browser's; the server counts again.
        await page.GotoAsync(server.TenantUrl("wcb-forms") + "/console/records/res.partner/new");
        await page.EvaluateAsync("() => { const n = document.getElementById('field-name'); n.removeAttribute('maxlength'); " +
            "n.value = 'x'.repeat(200000); }");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert))
            .ToContainTextAsync("'Name' has 200000 characters; at most 1000 are accepted.");

        // Malformed: a price that is not a number, a product type that is not offered, control characters.
        await page.GotoAsync(server.TenantUrl("wcb-forms") + "/console/records/product.product/new");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("Desk");
        await page.GetByLabel("Sales Price").FillAsync("12,5 EUR");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("'Sales Price' must be a number such as 12.50");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("Desk");
        await page.EvaluateAsync("() => { const o = document.createElement('option'); o.value = 'weapon'; o.selected = true; " +
            "document.getElementById('field-type').append(o); }");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("must be one of the choices offered, not 'weapon'");
        await page.GetByLabel("Name", new() { Exact = true }).EvaluateAsync("n => n.value = 'Bad\\u0007name'");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("'Name' contains control characters.");
        await PageChecks.AuditAsync(page, "console-record-refused");

        // A form post without its antiforgery token is refused before it reaches the page.
        await CreatePartnerAsync(server, db, "Target");
        var operation = await NewestOperationAsync(server, db);
        await page.GotoAsync(server.TenantUrl("wcb-forms") + $"/console/operations/{operation}");
        await page.EvaluateAsync("() => document.querySelectorAll('input[name=__RequestVerificationToken]').forEach(i => i.remove())");
        var refused = await page.RunAndWaitForResponseAsync(
            () => page.GetByRole(AriaRole.Button, new() { Name = "Undo", Exact = true }).ClickAsync(),
            r => r.Request.Method == "POST");
        Assert.Equal((int)HttpStatusCode.BadRequest, refused.Status);
        Assert.False(await ScalarAsync<bool>(server, db, "SELECT undone FROM loomworks_ai_operation_log WHERE id = $1", operation));

        Assert.Equal(partners + 1, await ScalarAsync<long>(server, db, "SELECT count(*) FROM res_partner"));
        Assert.Equal(products, await ScalarAsync<long>(server, db, "SELECT count(*) FROM product_product"));
        Assert.Equal(log + 1, await ScalarAsync<long>(server, db, "SELECT count(*) FROM loomworks_ai_operation_log WHERE state = 'done'"));
    }
}
