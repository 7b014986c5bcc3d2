using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>Hostile and malformed requests: each gets the right fault, the server stays up and no data changes.</summary>
public sealed class RpcBadInputTests(RpcBadInputTests.Fixture fixture) : IClassFixture<RpcBadInputTests.Fixture>, IDisposable
{
    public sealed class Fixture(PostgresFixture postgres) : RpcServerFixture(postgres, "rpc_bad_input")
    {
        protected override async Task SeedAsync()
        {
            await Postgres.ExecuteAsync(Server.Db,
                "INSERT INTO res_partner (name, complete_name, active) VALUES ('Keep Me', 'Keep Me', true)");
        }
    }

    private readonly RpcServer _server = fixture.Server;
    private readonly PostgresFixture postgres = fixture.Postgres;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private async Task AssertUnharmedAsync()
    {
        Assert.Equal(1, await postgres.ScalarAsync<long>(_server.Db, "SELECT count(*) FROM res_partner WHERE name = 'Keep Me'"));
        var (isFault, version) = await _client.XmlAsync("/xmlrpc/2/common", "version");
        Assert.False(isFault);
        Assert.Equal("18.0", ((Dictionary<string, object?>)version!)["server_version"]);
    }

    private static string Call(string method, string paramsXml) =>
        $"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{paramsXml}</params></methodCall>";

    [Fact]
    public async Task Malformed_xml_is_fault_1_naming_the_problem()
    {
        var (status, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", "<methodCall><methodName>version</methodName><params>");
        Assert.Equal((200, 1L), (status, code));
        Assert.Contains("Malformed XML-RPC request", message, StringComparison.Ordinal);
        (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", Call("version", "<param><value><int>12x</int></value></param>"));
        Assert.Equal(1L, code);
        Assert.Contains("not a valid <int>", message, StringComparison.Ordinal);
        await AssertUnharmedAsync();
    }

    [Fact]
    public async Task Xxe_and_billion_laughs_are_refused_before_expansion()
    {
        var xxe = "<?xml version='1.0'?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>" +
                  Call("login", "<param><value><string>&x;</string></value></param>").Replace("<?xml version='1.0'?>", "",
                      StringComparison.Ordinal);
        var (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", xxe);
        Assert.Equal(1L, code);
        Assert.Contains("DTD", message, StringComparison.Ordinal);
        Assert.DoesNotContain("root:", message, StringComparison.Ordinal);
        var laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\">" +
            "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">" +
            "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>" +
            "<methodCall><methodName>&lol3;</methodName></methodCall>";
        (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", laughs);
        Assert.Equal(1L, code);
        Assert.Contains("DTD", message, StringComparison.Ordinal);
        await AssertUnharmedAsync();
    }

    [Fact]
    public async Task Bodies_over_the_limit_get_413_on_every_endpoint()
    {
        var big = Call("version", "<param><value><string>" + new string('a', (int)RpcServer.BodyLimit + 10) + "</string></value></param>");
        var (status, _, message) = await _client.RawXmlAsync("/xmlrpc/2/common", big);
        Assert.Equal(413, status);
        Assert.Contains("limit", message, StringComparison.Ordinal);
        var (jsonStatus, _) = await _client.JsonAsync("/jsonrpc", "{\"params\":\"" + new string('a', (int)RpcServer.BodyLimit + 10)
            + "\"}");
        Assert.Equal(413, jsonStatus);
        await AssertUnharmedAsync();
    }

    [Theory]
    [InlineData("res.nothing", "search", "[[]]", 2L, "Object res.nothing doesn't exist")]
    [InlineData("res.partner", "_sql_injection", "[[]]", 4L, "Private methods")]
    [InlineData("res.partner", "no_such_method", "[[]]", 1L, "does not exist on the model")]
    [InlineData("res.partner", "search", "[[[\"nofield\", \"=\", 1]]]", 1L, "Invalid field res.partner.nofield")]
    [InlineData("res.partner", "search", "[[[\"name\", \"===\", 1]]]", 1L, "Invalid operator")]
    [InlineData("res.partner", "search", "[[[\"name); DELETE FROM res_partner; --\", \"=\", 1]]]", 1L, "Invalid field")]
    [InlineData("res.partner", "search", "[[[\"name\", \"=\", \"x'); DELETE FROM res_partner; --\"]]]", null, null)]
    [InlineData("res.partner", "search", "[[], 0, 10, \"name; DELETE FROM res_partner\"]", 1L, "Invalid order")]
    [InlineData("res.partner", "search", "[[], 0, -1]", 1L, "Invalid limit -1")]
    [InlineData("res.partner", "search", "[[], -3]", 1L, "Invalid offset -3")]
    [InlineData("res.partner", "search", "[[], 0, 9000000000000000000]", null, null)]
    [InlineData("res.partner", "search", "[\"not a domain\"]", 1L, "Invalid domain")]
    [InlineData("res.partner", "search", "[[], \"zero\"]", 1L, "offset must be an integer")]
    [InlineData("res.partner", "read", "[[1], [\"name; DROP TABLE res_partner\"]]", 1L, "Invalid field")]
    [InlineData("res.partner", "write", "[[1], \"not a dict\"]", 1L, "write() takes a dictionary")]
    [InlineData("res.partner", "create", "[{\"nofield\": 1}]", 1L, "Invalid field 'nofield'")]
    [InlineData("res.partner", "create", "[{\"color\": \"red\"}]", 1L, "Wrong value for res.partner.color")]
    [InlineData("res.partner", "search", "[[], 0, 10, null, 99]", 1L, "takes 5 positional arguments")]
    public async Task Wrong_calls_get_the_right_fault(string model, string method, string argsJson, long? expectedCode,
        string? expectedMessage)
    {
        var args = (List<object?>)Loomworks.Rpc.JsonRpcCodec.ToWire(System.Text.Json.JsonDocument.Parse(argsJson).RootElement)!;
        var (isFault, value) = await _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, 2L, "admin", model, method, args);
        if (expectedCode is null)
        {
            Assert.False(isFault, value?.ToString());
        }
        else
        {
            Assert.True(isFault);
            var fault = (Dictionary<string, object?>)value!;
            Assert.Equal(expectedCode, fault["faultCode"]);
            Assert.Contains(expectedMessage!, (string)fault["faultString"]!, StringComparison.Ordinal);
        }
        await AssertUnharmedAsync();
    }

    [Fact]
    public async Task Wrong_credentials_and_unknown_databases_are_access_denied()
    {
        var (isFault, value) = await _client.XmlAsync("/xmlrpc/2/object", "execute_kw", _server.Db, 2L, "nope", "res.partner", "search",
            new List<object?> { new List<object?>() });
        Assert.True(isFault);
        Assert.Equal(3L, ((Dictionary<string, object?>)value!)["faultCode"]);
        (isFault, value) = await _client.XmlAsync("/xmlrpc/2/object", "execute_kw", "no_such_db", 2L, "admin", "res.partner", "search",
            new List<object?> { new List<object?>() });
        Assert.Equal(3L, ((Dictionary<string, object?>)value!)["faultCode"]);
        (isFault, value) = await _client.XmlAsync("/xmlrpc/2/common", "authenticate", _server.Db, "admin", "wrong",
            new Dictionary<string, object?>());
        Assert.False(isFault);
        Assert.Equal(false, value);
        (isFault, value) = await _client.XmlAsync("/xmlrpc/common", "login", "no_such_db", "admin", "admin");
        Assert.True(isFault);
        Assert.Equal("AccessDenied", ((Dictionary<string, object?>)value!)["faultCode"]);
        await AssertUnharmedAsync();
    }
}
