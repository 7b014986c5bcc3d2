using Loomworks.Configuration;
using Loomworks.Records;
using Loomworks.Rpc;

namespace Loomworks.Server.Rpc;

/// <summary>
/// Odoo's web sessions: <c>/web/session/authenticate|get_session_info|check|destroy|logout</c> and
/// <c>/web/dataset/call_kw</c>, JSON-RPC routes authenticated by the <c>session_id</c> cookie of one tenant database.
/// </summary>
public static class WebSessionEndpoints
{
    private const string DefaultRedirect = "/odoo";

    public static IServiceCollection AddWebSessions(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(WebSessionOptions.From(settings));
        services.AddSingleton<WebSessionStore>();
        services.AddSingleton<WebSessionGate>();
        return services;
    }

    public static IEndpointRouteBuilder MapWebSessions(this IEndpointRouteBuilder app)
    {
        app.MapPost("/web/session/authenticate", (HttpContext http, WebSessionStore store, IRpcDatabases databases, RpcOptions options,
            ILogger<WebSessionStore> logger) => JsonRouteAsync(http, options, logger, p => AuthenticateAsync(http, p, store, databases)));
        app.MapPost("/web/session/get_session_info", (HttpContext http, WebSessionGate gate, RpcOptions options,
            ILogger<WebSessionStore> logger) =>
            JsonRouteAsync(http, options, logger, async _ =>
            {
                var session = await gate.RequireAsync(http, http.RequestAborted);
                return await WebSessionStore.SessionInfoAsync(session.Database, session.User.Uid, http.RequestAborted);
            }));
        app.MapPost("/web/session/check", (HttpContext http, WebSessionGate gate, RpcOptions options, ILogger<WebSessionStore> logger) =>
            JsonRouteAsync(http, options, logger, async _ =>
            {
                await gate.RequireAsync(http, http.RequestAborted);
                return null;
            }));
        app.MapPost("/web/session/destroy", (HttpContext http, WebSessionGate gate, WebSessionStore store, RpcOptions options,
            ILogger<WebSessionStore> logger) => JsonRouteAsync(http, options, logger, async _ =>
            {
                var session = await gate.RequireAsync(http, http.RequestAborted);
                await WebSessionStore.DestroyAsync(session.Database, session.Cookie, http.RequestAborted);
                ExpireCookie(http);
                return null;
            }));
        app.MapMethods("/web/session/logout", ["GET", "POST"], LogoutAsync);
        app.MapPost("/web/dataset/call_kw", CallKwAsync);
        app.MapPost("/web/dataset/call_kw/{**path}", CallKwAsync);
        return app;
    }

    private static async Task<object?> AuthenticateAsync(HttpContext http, Dictionary<string, object?> parameters, WebSessionStore store,
        IRpcDatabases databases)
    {
        var db = Required<string>(parameters, "authenticate", "db");
        var login = Required<string>(parameters, "authenticate", "login");
        var password = Required<string>(parameters, "authenticate", "password");
        Unexpected(parameters, "authenticate", "db", "login", "password", "base_location");
        var database = await databases.OpenAsync(http, db, http.RequestAborted);
        var opened = await store.LoginAsync(database, login, password, http.Connection.RemoteIpAddress?.ToString(), http.RequestAborted)
            ?? throw OdooException.Denied();
        // A session already held in this database is replaced, not kept beside the new one.
        if (WebSessionCookie.TryParse(http.Request.Cookies[WebSessionCookie.Name], out var previous, out _)
            && string.Equals(previous.Database, database.Name, StringComparison.Ordinal))
        {
            await WebSessionStore.DestroyAsync(database, previous, http.RequestAborted);
        }
        IssueCookie(http, opened.Cookie, store.Options.IdleTimeout);
        return await WebSessionStore.SessionInfoAsync(database, opened.Uid, http.RequestAborted);
    }

    private static Task<IResult> CallKwAsync(HttpContext http, WebSessionGate gate, RpcDispatcher dispatcher, RpcOptions options,
        ILogger<WebSessionStore> logger) => JsonRouteAsync(http, options, logger, async parameters =>
        {
            var model = Required<string>(parameters, "call_kw", "model");
            var method = Required<string>(parameters, "call_kw", "method");
            var args = Required<List<object?>>(parameters, "call_kw", "args");
            var kwargs = Required<Dictionary<string, object?>>(parameters, "call_kw", "kwargs");
            Unexpected(parameters, "call_kw", "model", "method", "args", "kwargs");
            var session = await gate.RequireAsync(http, http.RequestAborted);
            return await dispatcher.CallAsync(session.Database, session.User.Uid, model, method, args, kwargs, http.RequestAborted);
        });

    /// <summary>Odoo's logout: ends the session if there is one and redirects (303) to a local path.</summary>
    private static async Task<IResult> LogoutAsync(HttpContext http, WebSessionGate gate, WebSessionStore store,
        ILogger<WebSessionStore> logger)
    {
        try
        {
            var session = await gate.RequireAsync(http, http.RequestAborted);
            await WebSessionStore.DestroyAsync(session.Database, session.Cookie, http.RequestAborted);
        }
        catch (OdooException e)
        {
            // No live session to end here: logging out is still a success for the browser.
            logger.LogDebug("Logout without a live session: {Message}", e.Message);
        }
        ExpireCookie(http);
        string? target = http.Request.Query["redirect"];
        // Only paths on this server: anything else would make the logout an open redirect.
        if (target is not { Length: > 0 and <= 2000 } || target[0] != '/' || target.StartsWith("//", StringComparison.Ordinal)
            || target.StartsWith("/\\", StringComparison.Ordinal) || target.Any(char.IsControl))
        {
            target = DefaultRedirect;
        }
        http.Response.Headers.Location = target;
        return TypedResults.StatusCode(StatusCodes.Status303SeeOther);
    }

    /// <summary>Gives the browser a newly opened session (the JSON route and the console's login page alike).</summary>
    internal static void IssueCookie(HttpContext http, WebSessionCookie cookie, TimeSpan idleTimeout) =>
        http.Response.Cookies.Append(WebSessionCookie.Name, cookie.ToString(), CookieOptions(http, idleTimeout));

    private static CookieOptions CookieOptions(HttpContext http, TimeSpan maxAge) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Lax,
        // Request.IsHttps honours X-Forwarded-Proto from trusted proxies in proxy_mode.
        Secure = http.Request.IsHttps,
        Path = "/",
        MaxAge = maxAge,
        IsEssential = true,
    };

    private static void ExpireCookie(HttpContext http) =>
        http.Response.Cookies.Delete(WebSessionCookie.Name, CookieOptions(http, TimeSpan.Zero));

    /// <summary>
    /// An Odoo type='json' route: the body is a JSON-RPC request whose params object is the route's named arguments.
    /// Errors answer Odoo's error object (code 100 for an expired session) with status 200, as Odoo does, except a
    /// session refused for belonging to another tenant, which gets 403.
    /// </summary>
    private static async Task<IResult> JsonRouteAsync(HttpContext http, RpcOptions options, ILogger logger,
        Func<Dictionary<string, object?>, Task<object?>> handler)
    {
        var read = await RpcEndpoints.ReadBodyAsync(http, options, (error, original, status) =>
            RpcEndpoints.Answer(RpcEndpoints.JsonRpcError(null, error, original, options), "application/json", status));
        if (read.Body is null)
        {
            return read.Refusal!;
        }
        using var body = read.Body;
        object? id = null;
        try
        {
            var parameters = RpcEndpoints.ReadJsonRpc(http, body, out id) ?? new Dictionary<string, object?>(StringComparer.Ordinal);
            return RpcEndpoints.JsonRpcResult(id, await handler(parameters));
        }
        catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            var error = RpcEndpoints.Describe(e, logger);
            var expired = SessionErrors.IsExpired(error);
            var bytes = expired
                ? RpcEndpoints.JsonRpcError(id, error, e, options, 100, "Odoo Session Expired")
                : RpcEndpoints.JsonRpcError(id, error, e, options);
            var status = RpcEndpoints.UnavailableStatus(http, e)
                ?? (expired ? RpcRefusals.StatusOf(e) ?? StatusCodes.Status200OK : StatusCodes.Status200OK);
            return TypedResults.Text(System.Text.Encoding.UTF8.GetString(bytes), "application/json", System.Text.Encoding.UTF8, status);
        }
    }

    private static T Required<T>(Dictionary<string, object?> parameters, string route, string name) where T : class =>
        parameters.TryGetValue(name, out var value)
            ? value as T ?? throw OdooException.Type($"{route}() argument '{name}' must be {Kind<T>()}, not {Domain.Show(value)}")
            : throw OdooException.Type($"{route}() missing required argument: '{name}'");

    private static string Kind<T>() =>
        typeof(T) == typeof(string) ? "a string" : typeof(T) == typeof(List<object?>) ? "a list" : "an object";

    private static void Unexpected(Dictionary<string, object?> parameters, string route, params string[] known)
    {
        var extra = parameters.Keys.FirstOrDefault(k => !known.Contains(k, StringComparer.Ordinal));
        if (extra is not null)
        {
            throw OdooException.Type($"{route}() got an unexpected keyword argument {Domain.Show(extra)}");
        }
    }
}
