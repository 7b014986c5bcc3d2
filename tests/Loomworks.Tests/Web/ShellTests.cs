using System.Net;
using Loomworks.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Loomworks.Tests.Web;

/// <summary>The console's shell in a real browser: entry, sign-in and out, the page policy, antiforgery, isolation.</summary>
public sealed class ShellTests(PostgresFixture postgres, BrowserFixture browsers)
{
    [Fact]
    public async Task Signing_in_reaches_the_console_and_logging_out_ends_the_session()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_login", null, "wsh-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();

        var entry = await page.GotoAsync(server.TenantUrl("wsh-one") + "/");
        Assert.EndsWith("/web/login", page.Url, StringComparison.Ordinal);
        Assert.Equal(Loomworks.Server.Web.WebConsole.ContentSecurityPolicy, await entry!.HeaderValueAsync("content-security-policy"));
        await PageChecks.AuditAsync(page, "login");

        await page.GetByLabel("Email or login").FillAsync("admin");
        await page.GetByLabel("Password").FillAsync("wrong");
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Wrong login/password");
        await PageChecks.AuditAsync(page, "login-wrong-password");

        await page.GetByLabel("Email or login").FillAsync("admin");
        await page.GetByLabel("Password").FillAsync("admin");
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await page.WaitForURLAsync("**/console");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync("wsh-one");
        await PageChecks.AuditAsync(page, "console-placeholder");

        await page.SetViewportSizeAsync(360, 800);
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= 360"),
            "the console scrolls sideways at 360 px");
        await PageChecks.AuditAsync(page, "console-placeholder-360");
        await page.SetViewportSizeAsync(1280, 900);

        await page.GetByRole(AriaRole.Button, new() { Name = "Log out" }).ClickAsync();
        await page.WaitForURLAsync("**/web/login");
        await page.GotoAsync(server.TenantUrl("wsh-one") + "/console");
        Assert.EndsWith("/web/login", page.Url, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_console_page_without_a_session_goes_to_login_and_comes_back_after_sign_in()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_back", null, "wshb-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.TenantUrl("wshb-one") + "/console?tab=x");
        Assert.Contains("/web/login?redirect=%2Fconsole%3Ftab%3Dx", page.Url, StringComparison.Ordinal);
        await SignInAsync(page, "admin", "admin");
        await page.WaitForURLAsync("**/console?tab=x");

        // A redirect to another host is not followed: it would make the login page an open redirect.
        await page.GotoAsync(server.TenantUrl("wshb-one") + "/web/login?redirect=//evil.example/");
        Assert.EndsWith("/console", page.Url, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_session_of_one_tenant_is_refused_on_another_tenants_host()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_iso", null, "wshi-aaa", "wshi-bbb");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.TenantUrl("wshi-aaa") + "/web/login");
        await SignInAsync(page, "admin", "admin");
        await page.WaitForURLAsync("**/console");

        // The same session cookie, sent to the other tenant's host.
        var cookie = (await context.CookiesAsync()).Single(c => c.Name == "session_id");
        await context.AddCookiesAsync([new Microsoft.Playwright.Cookie
        {
            Name = cookie.Name, Value = cookie.Value, Domain = $"wshi-bbb.{WebServer.BaseDomain}", Path = "/",
        }]);
        var answer = await page.GotoAsync(server.TenantUrl("wshi-bbb") + "/console");
        Assert.EndsWith("/web/login", page.Url, StringComparison.Ordinal);
        var html = await answer!.TextAsync();
        Assert.DoesNotContain("wshi-aaa", html, StringComparison.Ordinal);
        Assert.Contains("wshi-bbb", html, StringComparison.Ordinal);
        Assert.True(await Sql.ScalarAsync<long>(server.Postgres.Endpoint, server.Management,
            "SELECT count(*) FROM loomworks_audit_cross_tenant WHERE credential_kind = 'web session' AND path = '/console'") >= 1);
    }

    [Fact]
    public async Task A_form_post_without_its_antiforgery_token_is_refused_and_hostile_input_changes_nothing()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_forge", null, "wsf-one");
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        var login = server.TenantUrl("wsf-one").Replace($"wsf-one.{WebServer.BaseDomain}", "127.0.0.1", StringComparison.Ordinal)
            + "/web/login";
        using var forged = new HttpRequestMessage(HttpMethod.Post, login)
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["_handler"] = "login", ["login"] = "admin", ["password"] = "admin",
            }),
        };
        forged.Headers.Host = $"wsf-one.{WebServer.BaseDomain}:{server.Host.Port}";
        using var refused = await client.SendAsync(forged, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.DoesNotContain(refused.Headers,
            h => h.Key == "Set-Cookie" && h.Value.Any(v => v.StartsWith("session_id=", StringComparison.Ordinal)));

        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.TenantUrl("wsf-one") + "/web/login");
        var huge = new string('x', 3 * 1024 * 1024);
        foreach (var (name, password) in new[] { (huge, "admin"), ("admin' OR '1'='1", "' OR '1'='1"), ("<script>x</script>", huge) })
        {
            await page.EvaluateAsync("([l, p]) => { document.getElementById('login').value = l; "
                + "document.getElementById('login').removeAttribute('maxlength'); document.getElementById('password').value = p; }",
                new[] { name, password });
            await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Wrong login/password");
            Assert.EndsWith("/web/login", page.Url, StringComparison.Ordinal);
        }
        Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == "session_id");
        await PageChecks.AuditAsync(page, "login-hostile");
        var health = await page.GotoAsync(server.BareUrl + "/web/health");
        Assert.Equal(200, health!.Status);
    }

    [Fact]
    public async Task The_bare_address_lists_tenants_only_when_list_db_is_on()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_entry", null, "wse-one", "wse-two");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.BareUrl + "/");
        Assert.EndsWith("/web/database/selector", page.Url, StringComparison.Ordinal);
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "wse-two" })).ToHaveAttributeAsync("href",
            server.TenantUrl("wse-two") + "/web/login");
        await PageChecks.AuditAsync(page, "selector");

        await using var closed = await WebServer.StartAsync(postgres, "webshell_nolist",
            new Dictionary<string, string> { ["list_db"] = "False" }, "wsn-one", "wsn-two");
        await page.GotoAsync(closed.BareUrl + "/");
        Assert.Equal(closed.BareUrl + "/", page.Url);
        await Assertions.Expect(page.Locator("main")).ToContainTextAsync("list_db");
        await Assertions.Expect(page.Locator("main")).Not.ToContainTextAsync("wsn-one");
        await PageChecks.AuditAsync(page, "entry-no-list");
        await page.GotoAsync(closed.BareUrl + "/web/database/selector");
        await Assertions.Expect(page.Locator("main")).ToContainTextAsync("set list_db = True");
        await Assertions.Expect(page.Locator("main")).Not.ToContainTextAsync("wsn-two");
    }

    [Fact]
    public async Task The_login_cooldown_applies_on_the_login_page()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_cool",
            new Dictionary<string, string> { ["loomworks_login_cooldown_after"] = "2" }, "wsc-one");
        await using var context = await browsers.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.TenantUrl("wsc-one") + "/web/login");
        for (var attempt = 0; attempt < 2; attempt++)
        {
            await SignInAsync(page, "admin", "wrong-" + attempt);
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Wrong login/password");
        }
        // The right password is refused too while the address cools down, and no session is opened.
        await SignInAsync(page, "admin", "admin");
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Too many login failures");
        Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == "session_id");
        await PageChecks.AuditAsync(page, "login-cooldown");
    }

    [Fact]
    public async Task The_server_wide_pages_read_at_360_px_without_scrolling_sideways()
    {
        await using var server = await WebServer.StartAsync(postgres, "webshell_narrow", null, "wsw-one", "wsw-two");
        await using var context = await browsers.NewContextAsync(360, 800);
        var page = await context.NewPageAsync();
        await page.GotoAsync(server.BareUrl + "/console/tenants");
        await page.GetByLabel("Master password").FillAsync(WebServer.MasterPassword);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.Locator("table").First).ToBeVisibleAsync();
        foreach (var (path, name) in new[]
        {
            ("/web/database/selector", "selector-360"), ("/web/database/manager", "manager-360"), ("/console/tenants", "operator-360"),
        })
        {
            await page.GotoAsync(server.BareUrl + path);
            Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= 360"),
                $"{path} scrolls sideways at 360 px");
            await PageChecks.AuditAsync(page, name);
        }
        await page.GotoAsync(server.TenantUrl("wsw-one") + "/web/login");
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= 360"), "login scrolls sideways");
        await PageChecks.AuditAsync(page, "login-360");
    }

    private static async Task SignInAsync(IPage page, string login, string password)
    {
        await page.GetByLabel("Email or login").FillAsync(login);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
    }
}
