using System.Text.Json;
using Loomworks.Configuration;
using Loomworks.Filestore;
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
    private const long Mebibyte = 1024 * 1024;
    private static readonly string RetryAfter =
        DatabaseUnavailable.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An error answer in the shape of the endpoint's protocol, with an HTTP status.</summary>
    internal delegate IResult ErrorAnswer(OdooException error, Exception original, int status);

    /// <summary>The request body cap <see cref="RpcOptions.From"/> binds from the configuration.</summary>
    internal static long BodyCapBytes(LoomworksSettings settings) => RpcOptions.BodyCapBytes(settings);

    public static IServiceCollection AddRpc(this IServiceCollection services, LoomworksSettings settings)
    {
        var options = RpcOptions.From(settings);
        services.AddSingleton(options);
        services.AddSingleton(AttachmentOptions.From(settings));
        services.AddSingleton(new RpcBodyBudget(options.BodiesInFlightBytes));
        services.AddSingleton(new LoginCooldown(options.LoginCooldownAfter, options.LoginCooldownDuration));
        services.AddSingleton<RpcAuthenticator>();
        services.AddSingleton<IRpcDatabases, RpcTenantDatabases>();
        services.AddSingleton<IRpcDatabaseManager, RpcDatabaseManager>();
        services.AddSingleton<IRpcWriteGuard, TenantLimitsWriteGuard>();
        services.AddSingleton<RpcDispatcher>();
        return services;
    }

    public static IEndpointRouteBuilder MapRpc(this IEndpointRouteBuilder app)
    {
        app.MapPost("/xmlrpc/2/{service}", (HttpContext http, string service, RpcDispatcher dispatcher, RpcOptions options,
            ILogger<RpcDispatcher> logger) =>
            XmlRpcAsync(http, service, legacy: false, dispatcher, options, logger));
        app.MapPost("/xmlrpc/{service}", (HttpContext http, string service, RpcDispatcher dispatcher, RpcOptions options,
            ILogger<RpcDispatcher> logger) =>
            XmlRpcAsync(http, service, legacy: true, dispatcher, options, logger));
        app.MapPost("/jsonrpc", JsonRpcAsync);
        app.MapPost("/json/2/{model}/{method}", Json2Async);
        return app;
    }

    /// <summary>
    /// The body in pooled chunks, or the refusal to answer instead: 413 over the cap, 503 with Retry-After when the
    /// bodies in flight hold the memory bound, 400 for a broken body. Nothing beyond the cap is read.
    /// </summary>
    internal static async Task<(RpcBody? Body, IResult? Refusal)> ReadBodyAsync(HttpContext http, RpcOptions options, ErrorAnswer answer)
    {
        var budget = http.RequestServices.GetRequiredService<RpcBodyBudget>();
        var (body, refusal) = await RpcBody.ReadAsync(http, options.MaxBodyBytes, budget);
        if (body is not null)
        {
            return (body, null);
        }
        var (status, error) = refusal switch
        {
            RpcBodyRefusal.TooLarge => (StatusCodes.Status413PayloadTooLarge, new OdooException(OdooErrorKind.ServerError,
                $"Request body larger than the limit of {options.MaxBodyBytes} bytes (loomworks_rpc_body_max_mb)",
                "werkzeug.exceptions.RequestEntityTooLarge")),
            RpcBodyRefusal.Busy => (StatusCodes.Status503ServiceUnavailable, new OdooException(OdooErrorKind.ServerError,
                "The server holds as much request body data as loomworks_rpc_bodies_in_flight_mb allows " +
                $"({budget.CapacityBytes / Mebibyte} MB); try again in a few seconds", "werkzeug.exceptions.ServiceUnavailable")),
            _ => (StatusCodes.Status400BadRequest, new OdooException(OdooErrorKind.ServerError,
                "The request body is incomplete: fewer bytes than its Content-Length, or broken chunked encoding",
                "werkzeug.exceptions.BadRequest")),
        };
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            http.Response.Headers.RetryAfter = RetryAfter;
        }
        return (null, answer(error, error, status));
    }

    /// <summary>503 with Retry-After when PostgreSQL is unreachable or restarting; null for every other failure.</summary>
    internal static int? UnavailableStatus(HttpContext http, Exception e)
    {
        if (!DatabaseUnavailable.Matches(e))
        {
            return null;
        }
        http.Response.Headers.RetryAfter = RetryAfter;
        return StatusCodes.Status503ServiceUnavailable;
    }

    /// <summary>Bytes with a status: the protocol's error shape is kept whatever the HTTP status says.</summary>
    internal static IResult Answer(byte[] bytes, string mediaType, int status) => status == StatusCodes.Status200OK
        ? TypedResults.Bytes(bytes, mediaType + "; charset=utf-8")
        : TypedResults.Text(System.Text.Encoding.UTF8.GetString(bytes), mediaType, System.Text.Encoding.UTF8, status);

    private static async Task<IResult> XmlRpcAsync(HttpContext http, string service, bool legacy, RpcDispatcher dispatcher,
        RpcOptions options, ILogger logger)
    {
        IResult Fault(OdooException error, Exception original, int status) =>
            Answer(XmlRpcCodec.WriteFault(legacy ? LegacyCode(error) : error.FaultCode, Message(error, original, options)), "text/xml",
                status);
        var read = await ReadBodyAsync(http, options, Fault);
        if (read.Body is null)
        {
            return read.Refusal!;
        }
        using var body = read.Body;
        try
        {
            using var stream = body.OpenRead();
            var (method, args) = XmlRpcCodec.ReadRequest(stream, http.RequestAborted);
            var result = await dispatcher.DispatchAsync(http, service, method, args, http.RequestAborted);
            return TypedResults.Bytes(XmlRpcCodec.WriteResponse(result), XmlType);
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            return Fault(Describe(e, logger), e, UnavailableStatus(http, e) ?? StatusCodes.Status200OK);
        }
    }

    /// <summary>Legacy /xmlrpc answers string fault codes: "AccessDenied" or "warning -- message".</summary>
    private static string LegacyCode(OdooException error) => error.Kind switch
    {
        OdooErrorKind.AccessDenied => "AccessDenied",
        OdooErrorKind.ServerError => error.Message,
        _ => "warning -- " + error.Message,
    };

    private static async Task<IResult> JsonRpcAsync(HttpContext http, RpcDispatcher dispatcher, RpcOptions options,
        ILogger<RpcDispatcher> logger)
    {
        var read = await ReadBodyAsync(http, options,
            (error, original, status) => Answer(JsonRpcError(null, error, original, options), "application/json", status));
        if (read.Body is null)
        {
            return read.Refusal!;
        }
        using var body = read.Body;
        object? id = null;
        try
        {
            var parameters = ReadJsonRpc(http, body, out id)
                ?? throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: params must be an object");
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
            return Answer(JsonRpcError(id, Describe(e, logger), e, options), "application/json",
                UnavailableStatus(http, e) ?? StatusCodes.Status200OK);
        }
    }

    /// <summary>
    /// Checks a JSON-RPC request's content type and shape; returns its params (null when absent) and its id.
    /// Throws <see cref="RpcProtocolException"/> or <see cref="JsonException"/> for what is not a JSON-RPC request.
    /// </summary>
    internal static Dictionary<string, object?>? ReadJsonRpc(HttpContext http, RpcBody body, out object? id)
    {
        id = null;
        var mediaType = http.Request.ContentType?.Split(';')[0].Trim();
        if (mediaType is not ("application/json" or "application/json-rpc"))
        {
            throw RpcProtocolException.BadRequest("Request inferred type is incompatible with the expected content type: " +
                $"{mediaType ?? "none"}; send application/json");
        }
        var request = JsonWireReader.Read(body.Sequence, http.RequestAborted) as Dictionary<string, object?>
            ?? throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: the body must be an object");
        id = request.GetValueOrDefault("id");
        return request.GetValueOrDefault("params") switch
        {
            null => null,
            Dictionary<string, object?> parameters => parameters,
            _ => throw RpcProtocolException.BadRequest("Invalid JSON-RPC request: params must be an object"),
        };
    }

    internal static IResult JsonRpcResult(object? id, object? result) => new PooledJsonResult(PooledJson.Serialize(w =>
    {
        w.WriteStartObject();
        w.WriteString("jsonrpc", "2.0");
        w.WritePropertyName("id");
        JsonRpcCodec.Write(w, id);
        w.WritePropertyName("result");
        JsonRpcCodec.Write(w, result);
        w.WriteEndObject();
    }), JsonType);

    /// <summary>A 200 answer written from a pooled buffer, which goes back to the pool once the answer is written.</summary>
    private sealed class PooledJsonResult(PooledJson json, string contentType) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            using (json)
            {
                httpContext.Response.ContentType = contentType;
                httpContext.Response.ContentLength = json.Written.Length;
                await httpContext.Response.Body.WriteAsync(json.Written, httpContext.RequestAborted);
            }
        }
    }

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
        var read = await ReadBodyAsync(http, options, (error, original, status) =>
            Answer(JsonRpcCodec.Serialize(w => WriteErrorData(w, error, original, options)), "application/json", status));
        if (read.Body is null)
        {
            return read.Refusal!;
        }
        using var body = read.Body;
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
                named = JsonWireReader.Read(body.Sequence, http.RequestAborted) as Dictionary<string, object?>
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
            var status = UnavailableStatus(http, e) ?? RpcRefusals.StatusOf(e) ?? error.Kind switch
            {
                OdooErrorKind.AccessDenied => StatusCodes.Status401Unauthorized,
                OdooErrorKind.AccessError => StatusCodes.Status403Forbidden,
                OdooErrorKind.MissingError => StatusCodes.Status404NotFound,
                OdooErrorKind.UserError when error.Message.StartsWith("Object ", StringComparison.Ordinal) => StatusCodes.Status404NotFound,
                OdooErrorKind.UserError or OdooErrorKind.ValidationError => StatusCodes.Status422UnprocessableEntity,
                _ when error.PythonName == "builtins.AttributeError" => StatusCodes.Status404NotFound,
                _ when error.PythonName is "builtins.ValueError" or "builtins.TypeError" or "werkzeug.exceptions.BadRequest" =>
                    StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status500InternalServerError,
            };
            var json = System.Text.Encoding.UTF8.GetString(JsonRpcCodec.Serialize(w => WriteErrorData(w, error, e, options)));
            return TypedResults.Text(json, "application/json", System.Text.Encoding.UTF8, status);
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
            case var _ when DatabaseUnavailable.Matches(e):
                // PostgreSQL restarting or out of reach: the client retries; the log says so without a stack.
                logger.LogWarning("RPC call failed: {Message}", DatabaseUnavailable.Describe(e));
                return new OdooException(OdooErrorKind.ServerError, DatabaseUnavailable.Describe(e),
                    "werkzeug.exceptions.ServiceUnavailable");
            case OdooException odoo:
                return odoo;
            case RpcProtocolException protocol:
                return new OdooException(OdooErrorKind.ServerError, protocol.Message, "werkzeug.exceptions.BadRequest");
            case JsonException json:
                return new OdooException(OdooErrorKind.ServerError, $"Invalid JSON data: {json.Message}", "werkzeug.exceptions.BadRequest");
            default:
                logger.LogError(e, "RPC call failed");
                return new OdooException(OdooErrorKind.ServerError,
                    "Internal server error (" + e.GetType().Name + "); see the server log", "builtins.Exception");
        }
    }
}
