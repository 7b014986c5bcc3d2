using System.Net.Http.Json;
using System.Text.Json;
using Loomworks.Tenancy;
using Microsoft.Playwright;

namespace Loomworks.Tests.Web.Console;

/// <summary>What the console's browser tests share: signing in, JSON-RPC calls as a client makes them, SQL on a tenant.</summary>
public static class ConsoleKit
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Opens the tenant's login page and signs in; waits until the console is shown.</summary>
    public static async Task SignInAsync(IPage page, string tenantUrl, string login = "admin", string password = "admin")
    {
        await page.GotoAsync(tenantUrl + "/web/login");
        await page.GetByLabel("Email or login").FillAsync(login);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await page.WaitForURLAsync("**/console");
    }

    public static async Task<string> DatabaseAsync(WebServer server, string subdomain) =>
        (await server.Service<TenantStore>().FindBySubdomainAsync(subdomain, Ct))!.DatabaseName;

    /// <summary>execute_kw through /jsonrpc as <paramref name="uid"/>; the context keys annotate the operation.</summary>
    public static async Task<JsonElement> RpcAsync(WebServer server, string database, string model, string method, object args,
        object? kwargs = null, long uid = 2, string password = "admin")
    {
        using var http = server.Host.CreateClient();
        var body = new
        {
            jsonrpc = "2.0", method = "call", id = 1,
            @params = new { service = "object", method = "execute_kw", args = new[] { database, uid, password, model, method, args,
                kwargs ?? new { } } },
        };
        using var answer = await http.PostAsJsonAsync("/jsonrpc", body, Ct);
        var json = await answer.Content.ReadFromJsonAsync<JsonElement>(Ct);
        return json.TryGetProperty("result", out var result)
            ? result.Clone()
            : throw new InvalidOperationException($"{model}.{method} failed: {json}");
    }

    /// <summary>A partner made by JSON-RPC, as an agent of <paramref name="session"/> would (no session: a plain client).</summary>
    public static async Task<long> CreatePartnerAsync(WebServer server, string database, string name, string? session = null,
        string? agent = null) =>
        (await RpcAsync(server, database, "res.partner", "create", new object[] { new { name } },
            new { context = new Dictionary<string, string?> { ["loomworks_session_id"] = session, ["loomworks_agent_id"] = agent } }))
            .GetInt64();

    public static async Task<T?> ScalarAsync<T>(WebServer server, string database, string sql, params object[] parameters)
    {
        await using var command = server.Service<Loomworks.Postgres.TenantDataSources>().For(database).CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.AddWithValue(p);
        }
        var value = await command.ExecuteScalarAsync(Ct);
        return value is DBNull or null ? default : (T)value;
    }

    /// <summary>The newest operation of the tenant's log.</summary>
    public static async Task<long> NewestOperationAsync(WebServer server, string database) =>
        await ScalarAsync<long>(server, database, "SELECT max(id) FROM loomworks_ai_operation_log");

    /// <summary>A user of base.group_user (not an administrator) with a password, made by the admin through RPC.</summary>
    public static async Task<long> CreateClerkAsync(WebServer server, string database, string login, string password)
    {
        var group = await ScalarAsync<int>(server, database, "SELECT id FROM res_groups WHERE xml_id = 'base.group_user'");
        return (await RpcAsync(server, database, "res.users", "create", new object[]
        {
            new Dictionary<string, object> { ["name"] = login, ["login"] = login, ["password"] = password,
                ["groups_id"] = new object[] { new object[] { 6, 0, new[] { group } } } },
        })).GetInt64();
    }
}
