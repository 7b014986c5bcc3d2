using Loomworks.Records;
using Loomworks.Security;
using System.Globalization;
using System.Text.Json.Serialization;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Loomworks.Server.Tenancy;

/// <summary>
/// Tenant-bound pages that prove routing end to end: who the routed tenant is and which database answers, and a
/// minimal session whose cookie names its tenant database, so a session used on another tenant is refused and audited.
/// </summary>
public static class TenantPages
{
    public const string SessionCookie = "loomworks_tenant_session";
    private const string Purpose = "Loomworks.Tenancy.Session";

    public sealed record TenantInfo(
        [property: JsonPropertyName("subdomain")] string Subdomain,
        [property: JsonPropertyName("database")] string Database,
        [property: JsonPropertyName("current_database")] string CurrentDatabase,
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("routed")] string Routed,
        [property: JsonPropertyName("login")] string? Login);

    public sealed record LoginBody(
        [property: JsonPropertyName("login")] string? Login,
        [property: JsonPropertyName("password")] string? Password);

    public sealed record Problem(
        [property: JsonPropertyName("error")] string Error,
        [property: JsonPropertyName("message")] string Message);

    public static void MapTenantPages(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/web/tenant");
        group.MapGet("/info", InfoAsync);
        group.MapPost("/login", LoginAsync);
    }

    private static async Task<Results<Ok<TenantInfo>, JsonHttpResult<Problem>>> InfoAsync(HttpContext context,
        TenantDataSources dataSources, CrossTenantAudit audit, IDataProtectionProvider protection, CancellationToken ct)
    {
        var routed = context.Features.Get<TenantFeature>()!;
        string? login = null;
        if (context.Request.Cookies[SessionCookie] is { } cookie)
        {
            if (Unprotect(protection, cookie) is not { } session)
            {
                return TypedResults.Json(new Problem("session_invalid", "the session cookie is not valid"), statusCode: 401);
            }
            var decision = await audit.CheckAsync(new CredentialUse(session.Database, routed.Tenant.DatabaseName, "session",
                session.Login, context.Connection.RemoteIpAddress?.ToString(), context.Request.Path), ct);
            if (decision.Refused)
            {
                return TypedResults.Json(new Problem("cross_tenant", decision.Message!), statusCode: 403);
            }
            login = session.Database == routed.Tenant.DatabaseName ? session.Login : null;
        }
        await using var command = dataSources.For(routed.Tenant.DatabaseName).CreateCommand("SELECT current_database()");
        var current = (string)(await command.ExecuteScalarAsync(ct))!;
        return TypedResults.Ok(new TenantInfo(routed.Tenant.Subdomain, routed.Tenant.DatabaseName, current, routed.Tenant.State,
            routed.Method, login));
    }

    private static async Task<Results<Ok<TenantInfo>, JsonHttpResult<Problem>>> LoginAsync(HttpContext context,
        TenantDataSources dataSources, IDataProtectionProvider protection, PasswordGate gate, CancellationToken ct)
    {
        var routed = context.Features.Get<TenantFeature>()!;
        var client = context.Connection.RemoteIpAddress?.ToString();
        if (gate.CoolingFor(routed.Tenant.DatabaseName, client) is { } wait)
        {
            return CoolingDown(context, wait);
        }
        LoginBody? body;
        try
        {
            body = await context.Request.ReadFromJsonAsync<LoginBody>(ct);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or BadHttpRequestException)
        {
            return TypedResults.Json(new Problem("bad_request", "the body must be JSON {\"login\": …, \"password\": …}"),
                statusCode: 400);
        }
        if (body?.Login is not { Length: > 0 and <= 200 } loginName || body.Password is not { Length: > 0 and <= 1000 } password)
        {
            return TypedResults.Json(new Problem("bad_request", "login and password are required"), statusCode: 400);
        }
        string? hash;
        await using (var command = dataSources.For(routed.Tenant.DatabaseName).CreateCommand(
            "SELECT password FROM res_users WHERE login = $1 AND active"))
        {
            command.Parameters.AddWithValue(loginName);
            hash = await command.ExecuteScalarAsync(ct) as string;
        }
        // API keys are for the API, not for interactive sessions, as in Odoo: only the password is checked.
        var check = gate.Check(routed.Tenant.DatabaseName, client, password, hash);
        if (check.Verdict == PasswordVerdict.CoolingDown)
        {
            return CoolingDown(context, gate.CoolingFor(routed.Tenant.DatabaseName, client) ?? gate.Cooldown.Duration);
        }
        if (!check.Accepted)
        {
            return TypedResults.Json(new Problem("access_denied", "wrong login or password"), statusCode: 401);
        }
        var protector = protection.CreateProtector(Purpose);
        context.Response.Cookies.Append(SessionCookie, protector.Protect(routed.Tenant.DatabaseName + "\n" + loginName),
            new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Lax });
        return TypedResults.Ok(new TenantInfo(routed.Tenant.Subdomain, routed.Tenant.DatabaseName, routed.Tenant.DatabaseName,
            routed.Tenant.State, routed.Method, loginName));
    }

    private static JsonHttpResult<Problem> CoolingDown(HttpContext context, TimeSpan wait)
    {
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Json(new Problem("login_cooldown", LoginCooldown.Message), statusCode: StatusCodes.Status429TooManyRequests);
    }

    private static (string Database, string Login)? Unprotect(IDataProtectionProvider protection, string cookie)
    {
        try
        {
            var parts = protection.CreateProtector(Purpose).Unprotect(cookie).Split('\n', 2);
            return parts.Length == 2 ? (parts[0], parts[1]) : null;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }
}
