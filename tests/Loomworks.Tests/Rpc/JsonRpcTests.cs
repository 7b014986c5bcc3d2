using System.Text.Json;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>/jsonrpc envelopes and errors, Odoo 19's JSON-2, the db service, and credentials bound to their database.</summary>
public sealed class JsonRpcTests(JsonRpcTests.Fixture fixture) : IClassFixture<JsonRpcTests.Fixture>, IDisposable
{
    public sealed class Fixture(PostgresFixture postgres) : RpcServerFixture(postgres, "rpc_json", "rpc_json_other");

    private static readonly string[] NameAndCompany = ["name", "company_id"];
    private static readonly string[] NameOnly = ["name"];

    private readonly RpcServer _server = fixture.Server;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task Jsonrpc_answers_results_and_odoo_shaped_errors_with_status_200()
    {
        var (status, body) = await _client.JsonRpcAsync("common", "version");
        Assert.Equal(200, status);
        Assert.Equal("2.0", body.GetProperty("jsonrpc").GetString());
        Assert.Equal(7, body.GetProperty("id").GetInt32());
        Assert.Equal(1, body.GetProperty("result").GetProperty("protocol_version").GetInt32());

        (status, body) = await _client.JsonRpcAsync("common", "login", _server.Db, "admin", "admin");
        Assert.Equal(2, body.GetProperty("result").GetInt32());

        (status, body) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "res.partner", "search_read",
            new object[] { new object[] { new object[] { "id", "=", 3 } } }, new { fields = NameAndCompany });
        var row = body.GetProperty("result")[0];
        Assert.Equal("Administrator", row.GetProperty("name").GetString());
        Assert.Equal("My Company", row.GetProperty("company_id")[1].GetString());

        (status, body) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "bad", "res.partner", "search",
            new object[] { Array.Empty<object>() });
        Assert.Equal(200, status);
        var error = body.GetProperty("error");
        Assert.Equal(200, error.GetProperty("code").GetInt32());
        Assert.Equal("Odoo Server Error", error.GetProperty("message").GetString());
        Assert.Equal("odoo.exceptions.AccessDenied", error.GetProperty("data").GetProperty("name").GetString());
        Assert.Equal("Access Denied", error.GetProperty("data").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":[1,2],\"id\":1}", "params must be an object")]
    [InlineData("{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":{\"service\":\"common\",\"method\":\"vers", "Invalid JSON data")]
    [InlineData("[1,2,3]", "the body must be an object")]
    [InlineData("{\"params\":{\"service\":\"nope\",\"method\":\"x\",\"args\":[]}}", "No such service")]
    [InlineData("{\"params\":{\"service\":\"object\",\"method\":\"execute_kw\",\"args\":\"x\"}}", "params.args must be a list")]
    public async Task Malformed_jsonrpc_requests_get_error_objects(string body, string expected)
    {
        var (status, answer) = await _client.JsonAsync("/jsonrpc", body);
        Assert.Equal(200, status);
        Assert.Contains(expected, answer.GetProperty("error").GetProperty("data").GetProperty("message").GetString(),
            StringComparison.Ordinal);
        var (_, version) = await _client.JsonRpcAsync("common", "version");
        Assert.Equal("18.0", version.GetProperty("result").GetProperty("server_version").GetString());
    }

    [Fact]
    public async Task Json2_uses_bearer_api_keys_named_parameters_and_http_statuses()
    {
        var (_, generated) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "res.users.apikeys", "generate",
            new object[] { "json-2" });
        var key = generated.GetProperty("result").GetString()!;

        var (status, body) = await _client.JsonAsync("/json/2/res.partner/create", new { vals_list = new[] { new { name = "J2" } } }, key,
            _server.Db);
        Assert.Equal(200, status);
        var id = body[0].GetInt32();
        (status, body) = await _client.JsonAsync("/json/2/res.partner/read", new { ids = new[] { id }, fields = NameOnly }, key,
            _server.Db);
        Assert.Equal("J2", body[0].GetProperty("name").GetString());
        (status, body) = await _client.JsonAsync("/json/2/res.partner/search_read",
            new { domain = new object[] { new object[] { "name", "=", "J2" } }, fields = NameOnly, context = new { lang = "en_US" } }, key);
        // X-Odoo-Database is optional only when a single database is served; here there are two.
        Assert.Equal(404, status);
        Assert.Contains("X-Odoo-Database", body.GetProperty("message").GetString(), StringComparison.Ordinal);

        (status, body) = await _client.JsonAsync("/json/2/res.partner/search", new { domain = Array.Empty<object>() },
            "wrong-key-0000000000", _server.Db);
        Assert.Equal(401, status);
        Assert.Equal("odoo.exceptions.AccessDenied", body.GetProperty("name").GetString());
        (status, body) = await _client.JsonAsync("/json/2/res.nothing/search", new { domain = Array.Empty<object>() }, key, _server.Db);
        Assert.Equal(404, status);
        (status, body) = await _client.JsonAsync("/json/2/res.partner/_private", new { }, key, _server.Db);
        Assert.Equal(403, status);
        (status, body) = await _client.JsonAsync("/json/2/res.partner/search",
            new { domain = new object[] { new object[] { "x", "=", 1 } } }, key, _server.Db);
        Assert.Equal(400, status);
        Assert.Contains("Invalid field", body.GetProperty("message").GetString(), StringComparison.Ordinal);
        foreach (var property in new[] { "name", "message", "arguments", "context", "debug" })
        {
            Assert.True(body.TryGetProperty(property, out _), property);
        }

        // The key belongs to its database: the other tenant does not know it.
        (status, _) = await _client.JsonAsync("/json/2/res.partner/search", new { domain = Array.Empty<object>() }, key, "rpc_json_other");
        Assert.Equal(401, status);

        // Revoked keys stop working at once.
        var (_, keys) = await _client.JsonAsync("/json/2/res.users.apikeys/search", new { domain = Array.Empty<object>() }, key,
            _server.Db);
        (status, _) = await _client.JsonAsync("/json/2/res.users.apikeys/revoke", new { ids = new[] { keys[0].GetInt32() } }, key,
            _server.Db);
        Assert.Equal(200, status);
        (status, _) = await _client.JsonAsync("/json/2/res.partner/search", new { domain = Array.Empty<object>() }, key, _server.Db);
        Assert.Equal(401, status);
    }

    [Fact]
    public async Task A_password_of_one_database_does_not_open_another()
    {
        using var client = new RpcClient(_server.Url);
        await client.ObjectAsync(_server.Db, 2, "admin", "res.users", "write",
            [new List<object?> { 2L }, new Dictionary<string, object?> { ["password"] = "only-in-a" }]);
        var (isFault, value) = await client.XmlAsync("/xmlrpc/2/object", "execute_kw", "rpc_json_other", 2L, "only-in-a", "res.partner",
            "search", new List<object?> { new List<object?>() });
        Assert.True(isFault);
        Assert.Equal(3L, ((Dictionary<string, object?>)value!)["faultCode"]);
        (isFault, value) = await client.XmlAsync("/xmlrpc/2/common", "authenticate", _server.Db, "admin", "only-in-a",
            new Dictionary<string, object?>());
        Assert.Equal(2L, value);
        await client.ObjectAsync(_server.Db, 2, "only-in-a", "res.users", "write",
            [new List<object?> { 2L }, new Dictionary<string, object?> { ["password"] = "admin" }]);
        (isFault, _) = await client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, 2L, "only-in-a", "res.partner", "search",
            new List<object?> { new List<object?>() });
        Assert.True(isFault);
    }

    [Fact]
    public async Task Db_service_lists_checks_and_refuses_what_it_cannot_do()
    {
        var (_, body) = await _client.JsonRpcAsync("db", "list");
        var names = body.GetProperty("result").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains(_server.Db, names);
        Assert.Contains("rpc_json_other", names);
        (_, body) = await _client.JsonRpcAsync("db", "db_exist", _server.Db);
        Assert.True(body.GetProperty("result").GetBoolean());
        (_, body) = await _client.JsonRpcAsync("db", "db_exist", "missing");
        Assert.False(body.GetProperty("result").GetBoolean());
        (_, body) = await _client.JsonRpcAsync("db", "server_version");
        Assert.Equal("18.0", body.GetProperty("result").GetString());
        // No admin_passwd is configured here: the management calls stay locked and say why.
        (_, body) = await _client.JsonRpcAsync("db", "create_database", "master", "newdb", false, "en_US", "pw");
        Assert.Equal("odoo.exceptions.AccessDenied", body.GetProperty("error").GetProperty("data").GetProperty("name").GetString());
        Assert.Contains("master password", body.GetProperty("error").GetProperty("data").GetProperty("message").GetString(),
            StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Array, (await _client.JsonRpcAsync("db", "list_lang")).Body.GetProperty("result").ValueKind);
    }
}
