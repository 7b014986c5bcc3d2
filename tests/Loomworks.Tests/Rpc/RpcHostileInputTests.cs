using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// Bodies built to cost the server memory or CPU, and text PostgreSQL cannot store: each is refused with a message
/// naming the problem, in the protocol's error shape, and the server keeps answering.
/// </summary>
public sealed class RpcHostileInputTests(RpcHostileInputTests.Fixture fixture) : IClassFixture<RpcHostileInputTests.Fixture>, IDisposable
{
    public const long BodyCap = 12L * 1024 * 1024;
    public const int InFlightMb = 10;

    /// <summary>The readers' limit on values in one request.</summary>
    private const int MaxValues = 1_000_000;

    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public RpcServer Server { get; private set; } = null!;
        public PostgresFixture Postgres => postgres;

        public async ValueTask InitializeAsync() => Server = await RpcServer.StartAsync(postgres, "rpc_hostile",
            new Dictionary<string, string>(), BodyCap);

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private readonly RpcServer _server = fixture.Server;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private async Task AssertAnsweringAsync()
    {
        var (status, version) = await _client.JsonRpcAsync("common", "version");
        Assert.Equal(200, status);
        Assert.Equal("18.0", version.GetProperty("result").GetProperty("server_version").GetString());
        var (isFault, login) = await _client.XmlAsync("/xmlrpc/2/common", "login", _server.Db, "admin", "admin");
        Assert.False(isFault);
        Assert.Equal(2L, login);
    }

    /// <summary>Posts raw bytes; the HTTP status, the Retry-After header and the body as text.</summary>
    private async Task<(int Status, string? RetryAfter, string Text)> PostAsync(string path, HttpContent content)
    {
        using var response = await _client.Http.PostAsync(path, content);
        return ((int)response.StatusCode, response.Headers.RetryAfter?.ToString(), await response.Content.ReadAsStringAsync());
    }

    private static ByteArrayContent Bytes(byte[] body, string mediaType)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return content;
    }

    private static string JsonErrorMessage(string text) =>
        JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("data").GetProperty("message").GetString()!;

    private static string XmlFaultMessage(string text)
    {
        var (isFault, value) = Loomworks.Rpc.XmlRpcCodec.ReadResponse(Encoding.UTF8.GetBytes(text));
        Assert.True(isFault);
        return (string)((Dictionary<string, object?>)value!)["faultString"]!;
    }

    private static string XmlCall(string method, string paramsXml) =>
        $"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{paramsXml}</params></methodCall>";

    [Fact]
    public async Task Sixteen_parallel_bodies_over_the_cap_get_413_in_the_protocols_shape_without_being_read()
    {
        var declared = BodyCap + 4 * 1024 * 1024;
        // As curl does for large bodies, the clients wait for "100 Continue": the refusal comes instead, and no byte is sent.
        using var handler = new SocketsHttpHandler { Expect100ContinueTimeout = TimeSpan.FromMinutes(1) };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(_server.Url) };
        async Task<(int Status, string Text)> PostDeclaredAsync(string path, string mediaType)
        {
            var body = new GeneratedContent(declared, mediaType);
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body };
            request.Headers.ExpectContinue = true;
            using var response = await http.SendAsync(request);
            Assert.Equal(0, body.Sent);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var answers = await Task.WhenAll(Enumerable.Range(0, 16).Select(i =>
            i % 2 == 0 ? PostDeclaredAsync("/jsonrpc", "application/json") : PostDeclaredAsync("/xmlrpc/2/common", "text/xml")));
        for (var i = 0; i < answers.Length; i++)
        {
            Assert.Equal(413, answers[i].Status);
            var message = i % 2 == 0 ? JsonErrorMessage(answers[i].Text) : XmlFaultMessage(answers[i].Text);
            Assert.Contains($"larger than the limit of {BodyCap} bytes (loomworks_rpc_body_max_mb)", message, StringComparison.Ordinal);
        }
        await AssertAnsweringAsync();
    }

    [Fact]
    public async Task A_body_that_would_pass_the_in_flight_memory_bound_gets_503_with_retry_after()
    {
        // A server of its own, whose bound is below the per-request cap.
        await using var server = await RpcServer.StartAsync(fixture.Postgres, "rpc_hostile_in_flight",
            new Dictionary<string, string>
            {
                ["loomworks_rpc_bodies_in_flight_mb"] = InFlightMb.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
            BodyCap);
        using var client = new RpcClient(server.Url);
        async Task<(int Status, string? RetryAfter, string Text)> PostAsync(HttpContent content)
        {
            using var response = await client.Http.PostAsync("/jsonrpc", content);
            return ((int)response.StatusCode, response.Headers.RetryAfter?.ToString(), await response.Content.ReadAsStringAsync());
        }
        // Chunked, so no Content-Length announces it: under the per-request cap, over what all bodies in flight may hold.
        var (status, retryAfter, text) =
            await PostAsync(new GeneratedContent((InFlightMb + 1) * 1024L * 1024, "application/json", chunked: true));
        Assert.Equal(503, status);
        Assert.Equal("5", retryAfter);
        Assert.Contains("loomworks_rpc_bodies_in_flight_mb", JsonErrorMessage(text), StringComparison.Ordinal);
        // What the refused body held is given back: a body just under the bound is read afterwards.
        var (underStatus, _, underText) =
            await PostAsync(new GeneratedContent((InFlightMb - 1) * 1024L * 1024, "application/json", chunked: true));
        Assert.Equal(200, underStatus);
        Assert.Contains("maximum configured depth", JsonErrorMessage(underText), StringComparison.Ordinal);
        var (versionStatus, version) = await client.JsonRpcAsync("common", "version");
        Assert.Equal((200, "18.0"), (versionStatus, version.GetProperty("result").GetProperty("server_version").GetString()));
    }

    [Fact]
    public async Task Xml_nesting_is_refused_as_it_is_read_not_after_the_whole_document()
    {
        const int depth = 100_000;
        var opening = string.Concat(Enumerable.Repeat("<value><array><data>", depth));
        // Cut off after the openings: only a reader that checks depth while reading can name the nesting.
        var (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", XmlCall("version", "<param>" + opening));
        Assert.Equal(1L, code);
        Assert.Contains("values nested deeper than 64 levels", message, StringComparison.Ordinal);
        var closing = string.Concat(Enumerable.Repeat("</data></array></value>", depth));
        (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", XmlCall("version", "<param>" + opening + closing + "</param>"));
        Assert.Equal(1L, code);
        Assert.Contains("values nested deeper than 64 levels", message, StringComparison.Ordinal);
        await AssertAnsweringAsync();
    }

    [Fact]
    public async Task More_values_than_the_limit_are_refused_in_both_protocols()
    {
        var values = MaxValues + 1;
        var xml = XmlCall("version",
            "<param><value><array><data>" + string.Concat(Enumerable.Repeat("<value/>", values)) + "</data></array></value></param>");
        var (_, code, message) = await _client.RawXmlAsync("/xmlrpc/2/common", xml);
        Assert.Equal(1L, code);
        Assert.Contains($"more than {MaxValues} values", message, StringComparison.Ordinal);
        var json = "{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":{\"service\":\"common\",\"method\":\"version\",\"args\":[["
            + string.Join(',', Enumerable.Repeat("0", values)) + "]]},\"id\":1}";
        var (status, answer) = await _client.JsonAsync("/jsonrpc", json);
        Assert.Equal(200, status);
        Assert.Contains($"more than {MaxValues} values",
            answer.GetProperty("error").GetProperty("data").GetProperty("message").GetString(), StringComparison.Ordinal);
        await AssertAnsweringAsync();
    }

    [Theory]
    [InlineData(new byte[] { 0x61, 0xFF, 0xFE, 0x62 }, "is not valid UTF-8")]
    [InlineData(new byte[] { 0x5C, 0x75, 0x64, 0x38, 0x30, 0x30, 0x78 }, "unpaired surrogate")] // \ud800x
    [InlineData(new byte[] { 0x61, 0xED, 0xA0, 0x80, 0x62 }, "is not valid UTF-8")] // a surrogate encoded in UTF-8
    public async Task Invalid_text_in_json_is_a_bad_request_naming_the_problem(byte[] inString, string expected)
    {
        var before = Encoding.UTF8.GetBytes(
            "{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":{\"service\":\"common\",\"method\":\"login\",\"args\":[\""
            + _server.Db + "\",\"");
        var after = Encoding.UTF8.GetBytes("\",\"admin\"]},\"id\":3}");
        var (status, _, text) = await PostAsync("/jsonrpc", Bytes([.. before, .. inString, .. after], "application/json"));
        Assert.Equal(200, status);
        var data = JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("data");
        Assert.Equal("werkzeug.exceptions.BadRequest", data.GetProperty("name").GetString());
        Assert.Contains(expected, data.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("Internal server error", data.GetProperty("message").GetString(), StringComparison.Ordinal);
        await AssertAnsweringAsync();
    }

    [Fact]
    public async Task Nul_in_a_json_string_is_refused_and_nothing_is_stored()
    {
        var (status, answer) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "res.partner", "create",
            new object[] { new Dictionary<string, object> { ["name"] = "nul\u0000partner" } });
        Assert.Equal(200, status);
        var message = answer.GetProperty("error").GetProperty("data").GetProperty("message").GetString();
        Assert.Contains("contains NUL (\\u0000), which PostgreSQL text cannot store", message, StringComparison.Ordinal);
        Assert.Equal(0, await fixture.Postgres.ScalarAsync<long>(_server.Db,
            "SELECT count(*) FROM res_partner WHERE name LIKE 'nul%partner'"));
        await AssertAnsweringAsync();
    }

    /// <summary>A body of <paramref name="length"/> bytes made as it is sent, so the test never holds it.</summary>
    private sealed class GeneratedContent : HttpContent
    {
        private readonly long _length;
        private readonly bool _chunked;

        public GeneratedContent(long length, string mediaType, bool chunked = false)
        {
            _length = length;
            _chunked = chunked;
            Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        public long Sent { get; private set; }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var block = new byte[64 * 1024];
            Array.Fill(block, (byte)'[');
            try
            {
                while (Sent < _length)
                {
                    var size = (int)Math.Min(block.Length, _length - Sent);
                    await stream.WriteAsync(block.AsMemory(0, size));
                    Sent += size;
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
            {
                // The server answered and closed the connection before taking the rest, as it should.
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _length;
            return !_chunked;
        }
    }
}
