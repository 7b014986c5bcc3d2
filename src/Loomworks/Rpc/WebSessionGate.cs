using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Microsoft.AspNetCore.Http;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>A request's live web session: the tenant database it is bound to, its cookie and its user.</summary>
public sealed record WebSession(RpcDatabase Database, WebSessionCookie Cookie, WebSessionUser User);

/// <summary>
/// Finds the web session of a request. The session's database is the request's <c>db</c> for routing (as Odoo
/// selects the database from the session); when the tenant header or the subdomain routes the request to another
/// tenant, a session that is live in its own database is refused, and audited as a cross-tenant attempt.
/// </summary>
public sealed class WebSessionGate(
    WebSessionStore store,
    IRpcDatabases databases,
    TenantRouter router,
    TenantCache cache,
    TenancyOptions options,
    CrossTenantAudit audit,
    TenantDataSources dataSources,
    TenantStore tenants)
{
    public const string CredentialKind = "web session";

    /// <summary>The session, or an <see cref="Records.OdooException"/>: SessionExpired, or the routing refusal.</summary>
    public async Task<WebSession> RequireAsync(HttpContext http, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!WebSessionCookie.TryParse(http.Request.Cookies[WebSessionCookie.Name], out var cookie, out var problem))
        {
            throw SessionErrors.Expired(problem);
        }
        var outcome = await router.RouteAsync(new RoutingRequest(
            http.Request.Host.Value ?? "",
            options.TenantHeader is null ? null : http.Request.Headers[options.TenantHeader].FirstOrDefault(),
            cookie.Database), ct);
        if (outcome.Tenant is { } routed && !string.Equals(routed.DatabaseName, cookie.Database, StringComparison.Ordinal))
        {
            throw await CrossTenantAsync(http, cookie, routed.DatabaseName, ct);
        }
        // The management database's answer and the session's own travel side by side: one round trip of waiting, not
        // two. The tenant's state is awaited first, so that a tenant not served is refused as such whatever the session's
        // own lookup found (a suspended tenant's database may still answer, or already refuse with another error).
        var served = RequireServedAsync(cookie.Database, ct);
        var resolved = ResolveAsync(http, cookie, ct);
        try
        {
            await served;
        }
        catch
        {
            await ObserveAsync(resolved);
            throw;
        }
        return await resolved;
    }

    /// <summary>Waits for a lookup whose answer no longer matters, so that its failure is not left unobserved.</summary>
    private static async Task ObserveAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception e) when (e is Records.OdooException or NpgsqlException or OperationCanceledException)
        {
            // The refusal already decided is the answer.
        }
    }

    private async Task<WebSession> ResolveAsync(HttpContext http, WebSessionCookie cookie, CancellationToken ct)
    {
        var database = await databases.OpenAsync(http, cookie.Database, ct);
        var user = await store.ResolveAsync(database.DataSource, database.Name, cookie, touch: true, ct)
            ?? throw SessionErrors.Expired("unknown, logged out, idle too long, or its user's password changed");
        return new WebSession(database, cookie, user);
    }

    /// <summary>
    /// Refuses a session whose tenant the management database does not show as active. Routing answers from a cache
    /// that learns of a suspend by NOTIFY, a moment after it committed; a session is never served in that moment.
    /// </summary>
    private async Task RequireServedAsync(string databaseName, CancellationToken ct)
    {
        var tenant = await tenants.FindByDatabaseAsync(databaseName, ct);
        if (tenant?.State == TenantStates.Active)
        {
            return;
        }
        var error = SessionErrors.Expired(tenant is null
            ? $"no tenant database '{TenantRules.Printable(databaseName)}'"
            : $"tenant '{tenant.Subdomain}' is {tenant.State}");
        error.Data[RpcRefusals.StatusKey] = tenant?.State switch
        {
            null => StatusCodes.Status404NotFound,
            TenantStates.Suspended or TenantStates.Archived => StatusCodes.Status403Forbidden,
            _ => StatusCodes.Status503ServiceUnavailable,
        };
        throw error;
    }

    /// <summary>
    /// The refusal of a session used on another tenant's request. Only a session that is live in the database it names
    /// is audited: a forged or dead cookie proves nothing about its owner, and auditing it would let anyone fill the audit.
    /// </summary>
    private async Task<Records.OdooException> CrossTenantAsync(HttpContext http, WebSessionCookie cookie, string routed,
        CancellationToken ct)
    {
        WebSessionUser? owner = null;
        if (await cache.ByDatabaseAsync(cookie.Database, ct) is not null)
        {
            try
            {
                owner = await store.ResolveAsync(dataSources.For(cookie.Database), cookie.Database, cookie, touch: false, ct);
            }
            catch (NpgsqlException)
            {
                // The owner's database may be unreachable (archived, being restored): the request is refused either way.
            }
        }
        if (owner is null)
        {
            return SessionErrors.Expired($"not a session of '{routed}'");
        }
        await audit.CheckAsync(new CredentialUse(cookie.Database, routed, CredentialKind, owner.Login,
            http.Connection.RemoteIpAddress?.ToString(), http.Request.Path.Value), ct);
        // Refused even when strict isolation is off: the session's uid means nothing in another database.
        var error = SessionErrors.Expired($"this session belongs to another tenant's database and cannot be used on '{routed}'");
        error.Data[RpcRefusals.StatusKey] = StatusCodes.Status403Forbidden;
        return error;
    }
}
