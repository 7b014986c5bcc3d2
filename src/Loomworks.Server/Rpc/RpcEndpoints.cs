using System.Text.Json;
using Loomworks.Configuration;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Security;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Loomworks.Server.Rpc;

/// <summary>Odoo's external API: /xmlrpc/2/*, legacy /xmlrpc/*, /jsonrpc and Odoo 19's /json/2/&lt;model&gt;/&lt;method&gt;.</summary>
public static class RpcEndpoints
{
    private const string XmlType = "text/xml; charset=utf-8";
    private const string JsonType = "application/json; charset=utf-8";

    public static IServiceCollection AddRpc(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(new RpcOptions { ListDatabases = settings.GetBool(ConfigKeys.ListDb) });
        services.AddSingleton(new LoginCooldown(settings.GetInt(ConfigKeys.LoginCooldownAfter),
            TimeSpan.FromSeconds(settings.GetInt(ConfigKeys.LoginCooldownDuration))));
        services.AddSingleton<RpcAuthenticator>();
        services.AddSingleton<IRpcDatabases, RpcTenantDatabases>();
        services.AddSingleton<IRpcDatabaseManager, RpcDatabaseManager>();
        services.AddSingleton<IRpcWriteGuard, TenantLimitsWriteGuard>();
        services.AddSingleton<RpcDispatcher>();
        return services;
    }

    public static IEndpointRouteBuilder MapRpc(this IEndpointRouteBuilder app)
    {
        app.MapPost("/xmlrpc/2/{service}", (HttpContext http, string service, RpcDispatcher dispatcher, RpcOptions options, ILogger<RpcDispatcher> logger) =>
            XmlRpcAsync(http, service, legacy: false, dispatcher, options, logger));
        app.MapPost("/xmlrpc/{service}", (HttpContext http, string service, RpcDispatcher dispatcher, RpcOptions options, ILogger<RpcDispatcher> logger) =>
            XmlRpcAsync(http, service, legacy: true, dispatcher, options, logger));
        app.MapPost("/jsonrpc", JsonRpcAsync);
        app.MapPost("/json/2/{model}/{method}", Json2Async);
        return app;
    }

    /// <summary>The body, or null when it is over the limit (the caller answers 413).</summary>
    internal static async Task<byte[]?> ReadBodyAsync(HttpContext http, RpcOptions options)
    {
        if (http.Request.ContentLength > options.MaxBodyBytes)
        {
            return null;
        }
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = options.MaxBodyBytes + 1;
        }
        // Small declared bodies (nearly every call) are read into one array of their size; a hostile length cannot
        // make us allocate much before the bytes arrive, larger bodies grow with what actually comes.
        if (http.Request.ContentLength is { } declared and > 0 and <= 64 * 1024)
        {
            var exact = new byte[declared];
            var filled = 0;
            try
            {
                int got;
                while (filled < exact.Length && (got = await http.Request.Body.ReadAsync(exact.AsMemory(filled), http.RequestAborted)) > 0)
                {
                    filled += got;
                }
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return null;
            }
            return filled == exact.Length ? exact : exact[..filled];
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        try
        {
            int read;
            while ((read = await http.Request.Body.ReadAsync(chunk, http.RequestAborted)) > 0)
            {
                if (buffer.Length + read > options.MaxBodyBytes)
                {
                    return null;
                }
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return null;
        }
        return buffer.ToArray();
    }

    internal static ContentHttpResult TooLarge(RpcOptions options) => TypedResults.Content(
        $"Request body larger than the limit of {options.MaxBodyBytes} bytes", "text/plain", statusCode: StatusCodes.Status413PayloadTooLarge);

    private static async Task<IResult> XmlRpcAsync(HttpContext http, string service, bool legacy, RpcDispatcher dispatcher,
        RpcOptions options, ILogger logger)
    {
        var body = await ReadBodyAsync(http, options);
        if (body is null)
        {
            return TooLarge(options);
        }
        try
        {
            var (method, args) = XmlRpcCodec.ReadRequest(body);
            var result = await dispatcher.DispatchAsync(http, service, method, args, http.RequestAborted);
            return TypedResults.Bytes(XmlRpcCodec.WriteResponse(result), XmlType);
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            var error = Describe(e, logger);
            object code = legacy ? LegacyCode(error) : error.FaultCode;
            return TypedResults.Bytes(XmlRpcCodec.WriteFault(code, Message(error, e, options)), XmlType);
        }
    }

    /// <summary>Legacy /xmlrpc answers string fault codes: "AccessDenied" or "warning -- message".</summary>
    private static string LegacyCode(OdooException error) => error.Kind switch
    {
        OdooErrorKind.AccessDenied => "AccessDenied",
        OdooErrorKind.ServerError => error.Message,
        _ => "warning -- " + error.Message,
    };

    private static async Task<IResult> JsonRpcAsync(HttpContext http, RpcDispatcher dispatcher, RpcOptions options, ILogger<RpcDispatcher> logger)
    {
        var body = await ReadBodyAsync(http, options);
        if (body is null)
        {
            return TooLarge(options);
        }
        object? id = null;
        try
        {
            var parameters = ReadJsonRpc(http, body, out id) ?? throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: params must be an object");
            var service = parameters.GetValueOrDefault("service") as string ?? throw OdooException.Type("params.service must be a string");
            var method = parameters.GetValueOrDefault("method") as string ?? throw OdooException.Type("params.method must be a string");
            var args = parameters.GetValueOrDefault("args") switch
            {
                null => [],
                IList<object?> list => list,
                var other => throw OdooException.Type($"params.args must be a list, not {Domain.Show(other)}"),
            };
            var result = await dispatcher.DispatchAsync(http, service, method, args, http.RequestAborted);
            return JsonRpcResult(id, result);
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            return TypedResults.Bytes(JsonRpcError(id, Describe(e, logger), e, options), JsonType);
        }
    }

    /// <summary>
    /// Checks a JSON-RPC request's content type and shape; returns its params (null when absent) and its id.
    /// Throws <see cref="RpcProtocolException"/> or <see cref="JsonException"/> for what is not a JSON-RPC request.
    /// </summary>
    internal static Dictionary<string, object?>? ReadJsonRpc(HttpContext http, byte[] body, out object? id)
    {
        id = null;
        var mediaType = http.Request.ContentType?.Split(';')[0].Trim();
        if (mediaType is not ("application/json" or "application/json-rpc"))
        {
            throw RpcProtocolException.BadRequest($"Request inferred type is incompatible with the expected content type: {mediaType ?? "none"}; send application/json");
        }
        using var document = JsonDocument.Parse(body, JsonRpcCodec.ReadOptions);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: the body must be an object");
        }
        var request = (Dictionary<string, object?>)JsonRpcCodec.ToWire(document.RootElement)!;
        id = request.GetValueOrDefault("id");
        return request.GetValueOrDefault("params") switch
        {
            null => null,
            Dictionary<string, object?> parameters => parameters,
            _ => throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: params must be an object"),
        };
    }

    internal static IResult JsonRpcResult(object? id, object? result) => TypedResults.Bytes(JsonRpcCodec.Serialize(w =>
    {
        w.WriteStartObject();
        w.WriteString("jsonrpc", "2.0");
        w.WritePropertyName("id");
        JsonRpcCodec.Write(w, id);
        w.WritePropertyName("result");
        JsonRpcCodec.Write(w, result);
        w.WriteEndObject();
    }), JsonType);

    /// <summary>A JSON-RPC error answer: Odoo puts 200 "Odoo Server Error" in the code and message of every error but a few.</summary>
    internal static byte[] JsonRpcError(object? id, OdooException error, Exception original, RpcOptions options, int code = 200,
        string message = "Odoo Server Error") => JsonRpcCodec.Serialize(w =>
    {
        w.WriteStartObject();
        w.WriteString("jsonrpc", "2.0");
        w.WritePropertyName("id");
        JsonRpcCodec.Write(w, id);
        w.WriteStartObject("error");
        w.WriteNumber("code", code);
        w.WriteString("message", message);
        w.WritePropertyName("data");
        WriteErrorData(w, error, original, options);
        w.WriteEndObject();
        w.WriteEndObject();
    });

    private static async Task<IResult> Json2Async(HttpContext http, string model, string method, RpcDispatcher dispatcher,
        IRpcDatabases databases, RpcAuthenticator authenticator, RpcOptions options, ILogger<RpcDispatcher> logger)
    {
        var body = await ReadBodyAsync(http, options);
        if (body is null)
        {
            return TooLarge(options);
        }
        try
        {
            var authorization = http.Request.Headers.Authorization.ToString();
            if (!authorization.StartsWith("bearer ", StringComparison.OrdinalIgnoreCase) || authorization.Length <= 7)
            {
                throw OdooException.Denied("Missing or malformed Authorization header: send \"Authorization: bearer <api key>\"");
            }
            var database = await databases.OpenAsync(http, http.Request.Headers["X-Odoo-Database"].FirstOrDefault(), http.RequestAborted);
            long uid;
            await using (var connection = await database.DataSource.OpenConnectionAsync(http.RequestAborted))
            {
                uid = await authenticator.CheckBearerAsync(connection, database.Name, authorization[7..].Trim(), http.RequestAborted);
            }
            Dictionary<string, object?> named;
            if (body.Length == 0)
            {
                named = new Dictionary<string, object?>(StringComparer.Ordinal);
            }
            else
            {
                using var document = JsonDocument.Parse(body, JsonRpcCodec.ReadOptions);
                named = JsonRpcCodec.ToWire(document.RootElement) as Dictionary<string, object?>
                    ?? throw RpcProtocolException.BadRequest("The JSON-2 body must be an object of named parameters");
            }
            var args = new List<object?>();
            if (named.Remove("ids", out var ids))
            {
                args.Add(ids);
            }
            var result = await dispatcher.CallAsync(database, uid, model, method, args, named, http.RequestAborted);
            return TypedResults.Bytes(JsonRpcCodec.Serialize(w => JsonRpcCodec.Write(w, result)), JsonType);
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            var error = Describe(e, logger);
            var status = RpcRefusals.StatusOf(e) ?? error.Kind switch
            {
                OdooErrorKind.AccessDenied => StatusCodes.Status401Unauthorized,
                OdooErrorKind.AccessError => StatusCodes.Status403Forbidden,
                OdooErrorKind.MissingError => StatusCodes.Status404NotFound,
                OdooErrorKind.UserError when error.Message.StartsWith("Object ", StringComparison.Ordinal) => StatusCodes.Status404NotFound,
                OdooErrorKind.UserError or OdooErrorKind.ValidationError => StatusCodes.Status422UnprocessableEntity,
                _ when error.PythonName == "builtins.AttributeError" => StatusCodes.Status404NotFound,
                _ when error.PythonName is "builtins.ValueError" or "builtins.TypeError" or "werkzeug.exceptions.BadRequest" => StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status500InternalServerError,
            };
            return TypedResults.Text(System.Text.Encoding.UTF8.GetString(JsonRpcCodec.Serialize(w => WriteErrorData(w, error, e, options))), "application/json",
                System.Text.Encoding.UTF8, status);
        }
    }

    internal static void WriteErrorData(System.Text.Json.Utf8JsonWriter w, OdooException error, Exception original, RpcOptions options)
    {
        w.WriteStartObject();
        w.WriteString("name", error.QualifiedName);
        w.WriteString("message", Message(error, original, options));
        w.WriteStartArray("arguments");
        w.WriteStringValue(error.Message);
        w.WriteEndArray();
        w.WriteStartObject("context");
        w.WriteEndObject();
        w.WriteString("debug", options.Debug ? original.ToString() : "");
        w.WriteEndObject();
    }

    private static string Message(OdooException error, Exception original, RpcOptions options) =>
        options.Debug && error.Kind == OdooErrorKind.ServerError ? original.ToString() : error.Message;

    /// <summary>Every failure as the Odoo exception a client expects; unexpected ones are logged and not detailed.</summary>
    internal static OdooException Describe(Exception e, ILogger logger)
    {
        switch (e)
        {
            case OdooException odoo:
                return odoo;
            case RpcProtocolException protocol:
                return new OdooException(OdooErrorKind.ServerError, protocol.Message, "werkzeug.exceptions.BadRequest");
            case JsonException json:
                return new OdooException(OdooErrorKind.ServerError, $"Invalid JSON data: {json.Message}", "werkzeug.exceptions.BadRequest");
            default:
                logger.LogError(e, "RPC call failed");
                return new OdooException(OdooErrorKind.ServerError, "Internal server error (" + e.GetType().Name + "); see the server log", "builtins.Exception");
        }
    }
}
