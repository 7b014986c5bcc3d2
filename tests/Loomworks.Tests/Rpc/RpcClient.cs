using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Loomworks.Rpc;

namespace Loomworks.Tests.Rpc;

/// <summary>Minimal XML-RPC and JSON-RPC calls over HTTP for the tests.</summary>
public sealed class RpcClient(string url) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };

    public HttpClient Http => _http;

    public async Task<(bool IsFault, object? Value)> XmlAsync(string path, string method, params object?[] args)
    {
        using var content = new ByteArrayContent(XmlRpcCodec.WriteRequest(method, args));
        content.Headers.ContentType = new MediaTypeHeaderValue("text/xml");
        using var response = await _http.PostAsync(path, content);
        response.EnsureSuccessStatusCode();
        return XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
    }

    public async Task<object?> ObjectAsync(string db, long uid, string password, string model, string method, List<object?> args,
        Dictionary<string, object?>? kwargs = null)
    {
        var (isFault, value) = await XmlAsync("/xmlrpc/2/object", "execute_kw", db, uid, password, model, method, args, kwargs ?? []);
        return isFault ? throw new FaultException((Dictionary<string, object?>)value!) : value;
    }

    /// <summary>Posts raw text to an XML-RPC path; returns the HTTP status and the fault (code, message) if any.</summary>
    public async Task<(int Status, object? Code, string? Message)> RawXmlAsync(string path, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "text/xml");
        using var response = await _http.PostAsync(path, content);
        if (!response.IsSuccessStatusCode)
        {
            return ((int)response.StatusCode, null, await response.Content.ReadAsStringAsync());
        }
        var (isFault, value) = XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
        return isFault && value is Dictionary<string, object?> fault
            ? (200, fault["faultCode"], fault["faultString"] as string)
            : (200, null, null);
    }

    public async Task<(int Status, JsonElement Body)> JsonAsync(string path, object body, string? bearer = null,
        string? database = null, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, contentType),
        };
        if (bearer is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "bearer " + bearer);
        }
        if (database is not null)
        {
            request.Headers.Add("X-Odoo-Database", database);
        }
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
        }
        catch (JsonException)
        {
            return ((int)response.StatusCode, default);
        }
    }

    public Task<(int Status, JsonElement Body)> JsonRpcAsync(string service, string method, params object?[] args) =>
        JsonAsync("/jsonrpc", new { jsonrpc = "2.0", method = "call", @params = new { service, method, args }, id = 7 });

    public void Dispose() => _http.Dispose();
}

/// <summary>An XML-RPC fault as a test sees it.</summary>
public sealed class FaultException(Dictionary<string, object?> fault) : Exception(fault["faultString"] as string)
{
    public object? Code { get; } = fault["faultCode"];
}
