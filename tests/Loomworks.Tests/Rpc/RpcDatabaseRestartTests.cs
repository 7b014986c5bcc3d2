using System.Text;
using System.Text.Json;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// PostgreSQL stopped under a running server: RPC calls answer 503 with Retry-After in their protocol's error shape,
/// saying the database is unavailable, and work again once it is back. The cluster is this class's own, since
/// stopping the shared one would fail every other test.
/// </summary>
public sealed class RpcDatabaseRestartTests(RpcDatabaseRestartTests.Fixture fixture) : IClassFixture<RpcDatabaseRestartTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public PostgresFixture Postgres { get; } = new();
        public RpcServer Server { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            await Postgres.InitializeAsync();
            Server = await RpcServer.StartAsync(Postgres, "rpc_pg_restart");
        }

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            await Postgres.DisposeAsync();
        }
    }

    private static async Task<(int Status, string? RetryAfter, string Text)> PostAsync(HttpClient http, string path, byte[] body,
        string mediaType)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(mediaType);
        using var response = await http.PostAsync(path, content);
        return ((int)response.StatusCode, response.Headers.RetryAfter?.ToString(), await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Calls_while_postgres_is_down_get_503_with_retry_after_and_work_again_after_it_restarts()
    {
        var server = fixture.Server;
        using var client = new RpcClient(server.Url);
        var search = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            jsonrpc = "2.0", method = "call", id = 9,
            @params = new
            {
                service = "object", method = "execute_kw",
                args = new object[] { server.Db, 2, "admin", "res.partner", "search_count", new object[] { Array.Empty<object>() } },
            },
        }));
        var xmlSearch = Loomworks.Rpc.XmlRpcCodec.WriteRequest("execute_kw",
            [server.Db, 2L, "admin", "res.partner", "search_count", new List<object?> { new List<object?>() }]);
        Assert.Equal(200, (await PostAsync(client.Http, "/jsonrpc", search, "application/json")).Status);

        await fixture.Postgres.Cluster.StopAsync();
        try
        {
            var (status, retryAfter, text) = await PostAsync(client.Http, "/jsonrpc", search, "application/json");
            Assert.Equal(503, status);
            Assert.Equal("5", retryAfter);
            var data = JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("data");
            Assert.Equal("werkzeug.exceptions.ServiceUnavailable", data.GetProperty("name").GetString());
            Assert.Contains("The database server is unavailable", data.GetProperty("message").GetString(), StringComparison.Ordinal);

            (status, retryAfter, text) = await PostAsync(client.Http, "/xmlrpc/2/object", xmlSearch, "text/xml");
            Assert.Equal(503, status);
            Assert.Equal("5", retryAfter);
            var (isFault, fault) = Loomworks.Rpc.XmlRpcCodec.ReadResponse(Encoding.UTF8.GetBytes(text));
            Assert.True(isFault);
            Assert.Contains("The database server is unavailable", (string)((Dictionary<string, object?>)fault!)["faultString"]!,
                StringComparison.Ordinal);
        }
        finally
        {
            await fixture.Postgres.Cluster.StartAsync();
        }

        // Pooled connections broken by the restart fail once each (503 again), then calls are answered.
        await Eventually.HoldsAsync(async () =>
            (await PostAsync(client.Http, "/jsonrpc", search, "application/json")).Text.Contains("\"result\"", StringComparison.Ordinal),
            "a JSON-RPC call answers with a result after PostgreSQL is back");
        var (_, _, answer) = await PostAsync(client.Http, "/xmlrpc/2/object", xmlSearch, "text/xml");
        Assert.False(Loomworks.Rpc.XmlRpcCodec.ReadResponse(Encoding.UTF8.GetBytes(answer)).IsFault);
    }
}
