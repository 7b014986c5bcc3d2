using System.Net;
using Loomworks.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Loomworks.Tests.Web;

/// <summary>/console/tenants in a real browser: the operator's sign-in, every tenant action, jobs, hostile input.</summary>
public sealed class OperatorConsoleTests(PostgresFixture postgres, BrowserFixture browsers)
{
    private const string Tenants = "/console/tenants";

    [Fact]
    public async Task An_operator_signs_in_once_and_creates_suspends_activates_limits_archives_and_deletes_tenants()
    {
        await using var server = await WebServer.StartAsync(postgres, "webop_flow", null, "wof-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync(server.BareUrl + Tenants);
        await PageChecks.AuditAsync(page, "operator-sign-in");
        await page.GetByLabel("Master password").FillAsync("wrong");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("wrong master password");
        await Assertions.Expect(page.Locator("table")).ToHaveCountAsync(0);

        await page.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(Row(page, "wof-one")).ToContainTextAsync("active");
        var cookie = (await context.CookiesAsync()).Single(c => c.Name == "loomworks_operator");
        Assert.True(cookie.HttpOnly);
        Assert.True(cookie.Expires - DateTimeOffset.UtcNow.ToUnixTimeSeconds() <= 15 * 60, "the operator session is not short-lived");

        // Signed in once: a new visit needs no password.
        await page.GotoAsync(server.BareUrl + Tenants);
        await page.GetByText("Create a tenant").ClickAsync();
        var create = page.Locator("form#create-tenant");
        await create.GetByLabel("Name").FillAsync("Operator's New");
        await create.GetByLabel("Subdomain").FillAsync("wof-new");
        await create.GetByLabel("Administrator's password").FillAsync("new-secret");
        await create.GetByRole(AriaRole.Button, new() { Name = "Create tenant" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Tenant wof-new created.");
        await Assertions.Expect(Row(page, "wof-new")).ToContainTextAsync("active");
        await Assertions.Expect(page.Locator("section", new() { HasText = "Jobs" }).Locator("tbody tr",
            new() { HasText = "wof-new" }).First).ToContainTextAsync("provision");
        await PageChecks.AuditAsync(page, "operator-tenants");

        await Row(page, "wof-one").GetByRole(AriaRole.Button, new() { Name = "Suspend" }).ClickAsync();
        await Assertions.Expect(Row(page, "wof-one")).ToContainTextAsync("suspended");
        var suspended = await context.NewPageAsync();
        var answer = await suspended.GotoAsync(server.TenantUrl("wof-one") + "/web/login");
        Assert.Equal(403, answer!.Status);
        await suspended.CloseAsync();
        await Row(page, "wof-one").GetByRole(AriaRole.Button, new() { Name = "Activate" }).ClickAsync();
        await Assertions.Expect(Row(page, "wof-one")).ToContainTextAsync("active");

        await Row(page, "wof-one").Locator("summary").ClickAsync();
        await Row(page, "wof-one").GetByLabel("Maximum users").FillAsync("7");
        await Row(page, "wof-one").GetByRole(AriaRole.Button, new() { Name = "Set limits" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Limits of wof-one set.");
        await Assertions.Expect(Row(page, "wof-one")).ToContainTextAsync("of 7");
        Assert.Equal(7, await Sql.ScalarAsync<int>(server.Postgres.Endpoint, server.Management,
            "SELECT max_users FROM loomworks_tenant WHERE subdomain = 'wof-one'"));

        await Row(page, "wof-new").GetByRole(AriaRole.Button, new() { Name = "Archive" }).ClickAsync();
        await Assertions.Expect(Row(page, "wof-new")).ToContainTextAsync("archived");
        await Row(page, "wof-new").GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Tenant wof-new deleted.");
        await Assertions.Expect(Row(page, "wof-new")).ToHaveCountAsync(0);

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Assertions.Expect(page.GetByLabel("Master password")).ToBeVisibleAsync();
        await page.GotoAsync(server.BareUrl + Tenants);
        await Assertions.Expect(page.Locator("table")).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task Forged_cookies_forged_posts_and_hostile_fields_change_nothing()
    {
        await using var server = await WebServer.StartAsync(postgres, "webop_hostile", null, "woh-one");
        await using var context = await browsers.NewContextAsync();
        await context.AddCookiesAsync([new Microsoft.Playwright.Cookie
        {
            Name = "loomworks_operator", Value = "CfDJ8forged", Domain = "127.0.0.1", Path = Tenants,
        }]);
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.BareUrl + Tenants);
        await Assertions.Expect(page.Locator("table")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("main")).Not.ToContainTextAsync("woh-one");

        using var client = server.Host.CreateClient(redirects: false);
        using var forged = await client.PostAsync(Tenants, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "state-woh-one", ["subdomain"] = "woh-one", ["action"] = "suspend",
        }), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);

        await page.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GetByText("Create a tenant").ClickAsync();
        var create = page.Locator("form#create-tenant");
        foreach (var (name, subdomain) in new[]
        {
            (new string('n', 3 * 1024 * 1024), "woh-big"), ("Quotes ' \" ;", "woh'; DROP TABLE loomworks_tenant; --"),
            ("<script>alert(1)</script>", "WOH-UPPER"),
        })
        {
            if (await page.Locator("details[open] form#create-tenant").CountAsync() == 0)
            {
                await page.GetByText("Create a tenant").ClickAsync();
            }
            await create.EvaluateAsync("(form, [name, sub]) => { for (const i of form.querySelectorAll('input')) "
                + "i.removeAttribute('maxlength'); form.querySelector('[name=name]').value = name; "
                + "form.querySelector('[name=subdomain]').value = sub; }", new[] { name, subdomain });
            await create.GetByLabel("Administrator's password").FillAsync("x-secret");
            await create.GetByRole(AriaRole.Button, new() { Name = "Create tenant" }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToBeVisibleAsync();
            Assert.True((await page.ContentAsync()).Length < 100_000, "the refusal echoes the input back");
        }
        await Row(page, "woh-one").Locator("summary").ClickAsync();
        await Row(page, "woh-one").GetByLabel("Maximum users").EvaluateAsync("i => { i.type = 'text'; i.value = '12abc'; }");
        await Row(page, "woh-one").GetByRole(AriaRole.Button, new() { Name = "Set limits" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("max_users must be a whole number");
        await PageChecks.AuditAsync(page, "operator-hostile");

        Assert.Equal(1L, await Sql.ScalarAsync<long>(server.Postgres.Endpoint, server.Management, "SELECT count(*) FROM loomworks_tenant"));
        Assert.Equal(10, await Sql.ScalarAsync<int>(server.Postgres.Endpoint, server.Management,
            "SELECT max_users FROM loomworks_tenant WHERE subdomain = 'woh-one'"));
        Assert.Equal("active", await Sql.ScalarAsync<string>(server.Postgres.Endpoint, server.Management,
            "SELECT state FROM loomworks_tenant WHERE subdomain = 'woh-one'"));
    }

    private static ILocator Row(IPage page, string subdomain) =>
        page.Locator("table tbody tr").Filter(new()
        {
            Has = page.GetByRole(AriaRole.Rowheader).Filter(new() { HasText = subdomain + " ·" }),
        });
}
