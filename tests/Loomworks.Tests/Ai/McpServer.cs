using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Loomworks.Tenancy;
using Loomworks.Testing;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Rpc;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Loomworks.Tests.Ai;

/// <summary>
/// A Loomworks server with its own management database and base domain, tenants made by the provisioner (admin/admin),
/// and what MCP tests need: API keys made through RPC, MCP clients that reach a tenant by its host name, raw requests.
/// </summary>
public sealed class McpServer(LoomworksHost host, string management) : ServerUnderTest(host)
{
    public const string BaseDomain = "mcp.test";
    public const string MasterPassword = "mcp-master-secret";

    public string Management { get; } = management;

    public static async Task<McpServer> StartAsync(PostgresFixture fixture, string name, params TenantRequest[] tenants)
    {
        var (host, management) = await StartWithManagementAsync(fixture, name, (options, _) =>
        {
            options.Set("loomworks_base_domain", BaseDomain).Set("admin_passwd", MasterPassword);
            options.BeforeStart = async services =>
            {
                var provisioner = (TenantProvisioner)services.GetService(typeof(TenantProvisioner))!;
                foreach (var tenant in tenants)
                {
                    await provisioner.CreateAsync(tenant, CancellationToken.None);
                }
            };
        });
        return new McpServer(host, management);
    }

    /// <summary>A second instance on the same cluster and management database.</summary>
    public static async Task<McpServer> SecondInstanceAsync(PostgresFixture fixture, string management)
    {
        var host = await LoomworksHost.StartAsync(options =>
            options.UseCluster(fixture.Endpoint).Set("loomworks_mgmt_db", management).Set("loomworks_base_domain", BaseDomain));
        return new McpServer(host, management);
    }

    public static string HostOf(string subdomain) => $"{subdomain}.{BaseDomain}";

    public async Task<Tenant> TenantAsync(string subdomain) =>
        (await Host.Get<TenantStore>().FindBySubdomainAsync(subdomain, CancellationToken.None))!;

    /// <summary>A new API key of the tenant's admin (uid 2), made as an integration would: res.users.apikeys generate.</summary>
    public async Task<string> ApiKeyAsync(string subdomain, string description = "mcp tests")
    {
        var db = (await TenantAsync(subdomain)).DatabaseName;
        using var client = new RpcClient(Url);
        return (string)(await client.ObjectAsync(db, 2, "admin", "res.users.apikeys", "generate", [description]))!;
    }

    /// <summary>Runs an ORM method as the tenant's admin over XML-RPC.</summary>
    public async Task<object?> RpcAsync(string subdomain, string model, string method, List<object?> args,
        Dictionary<string, object?>? kwargs = null)
    {
        var db = (await TenantAsync(subdomain)).DatabaseName;
        using var client = new RpcClient(Url);
        return await client.ObjectAsync(db, 2, "admin", model, method, args, kwargs);
    }

    /// <summary>An MCP client (the official C# SDK) connected to <paramref name="subdomain"/>'s host with the key.</summary>
    public Task<McpClient> ClientAsync(string subdomain, string key, string clientName = "loomworks-tests") =>
        ConnectAsync(Url, HostOf(subdomain), key, clientName);

    /// <summary>An MCP client on <paramref name="url"/>: routed by <paramref name="host"/>, or by database when it is null.</summary>
    public static async Task<McpClient> ConnectAsync(string url, string? host, string key, string clientName = "loomworks-tests",
        string? database = null)
    {
        var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Host = host;
        if (database is not null)
        {
            http.DefaultRequestHeaders.Add("X-Odoo-Database", database);
        }
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(url + "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + key },
        }, http, ownsHttpClient: true);
        return await McpClient.CreateAsync(transport, new McpClientOptions
        {
            ClientInfo = new Implementation { Name = clientName, Version = "1.2.3" },
            // The 2026-07-28 revision sends the client's name with every request; left to probe, a slow first answer
            // would make the client fall back to the initialize handshake, after which a stateless server knows no name.
            ProtocolVersion = "2026-07-28",
        });
    }

    /// <summary>A raw JSON-RPC request to /mcp: (status, WWW-Authenticate, body).</summary>
    public async Task<(int Status, string? Challenge, string Body)> RawAsync(string host, string? authorization, string body,
        Dictionary<string, string>? headers = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromMinutes(2) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Host = host;
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }
        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, response.Headers.WwwAuthenticate.FirstOrDefault()?.ToString(),
            await response.Content.ReadAsStringAsync());
    }

    public const string ListToolsBody = """{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}""";
}

/// <summary>Calls tools and reads their results as the JSON the server sent in structuredContent.</summary>
public static class McpCalls
{
    public static async Task<JsonElement> OkAsync(this McpClient client, string tool, Dictionary<string, object?>? args = null)
    {
        var result = await client.CallToolAsync(tool, args ?? [], cancellationToken: TestContext.Current.CancellationToken);
        var text = result.Content.OfType<TextContentBlock>().FirstOrDefault()?.Text;
        Assert.True(result.IsError is not true, $"{tool} failed: {text}");
        var structured = Assert.NotNull(result.StructuredContent);
        Assert.Equal(structured.GetRawText(), JsonSerializer.Serialize(JsonDocument.Parse(text!).RootElement));
        return structured;
    }

    public static async Task<string> RefusedAsync(this McpClient client, string tool, Dictionary<string, object?> args)
    {
        var result = await client.CallToolAsync(tool, args, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(result.IsError, $"{tool} was expected to be refused");
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        return text;
    }
}
