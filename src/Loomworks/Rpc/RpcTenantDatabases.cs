using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Microsoft.AspNetCore.Http;

namespace Loomworks.Rpc;

/// <summary>
/// Finds the tenant database of an RPC call with Tenancy's router: the call's <c>db</c> (or JSON-2's X-Odoo-Database)
/// is the routing request's database, beside the request's host (X-Forwarded-Host already applied in proxy_mode) and
/// the tenant header. A call whose header or subdomain routes to one tenant while its <c>db</c> names another is
/// refused and audited: the credential it carries belongs to the database it names.
/// </summary>
public sealed class RpcTenantDatabases(
    TenantRouter router,
    TenantCache cache,
    TenancyOptions options,
    CrossTenantAudit audit,
    TenantDataSources dataSources,
    FileStore files,
    AttachmentOptions attachments) : IRpcDatabases
{
    public async Task<RpcDatabase> OpenAsync(HttpContext http, string? db, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        var request = new RoutingRequest(
            http.Request.Host.Value ?? "",
            options.TenantHeader is null ? null : http.Request.Headers[options.TenantHeader].FirstOrDefault(),
            string.IsNullOrEmpty(db) ? null : db);
        var outcome = await router.RouteAsync(request, ct);
        if (outcome.Tenant is { } routed && request.Database is { } named
            && !string.Equals(routed.DatabaseName, named, StringComparison.Ordinal))
        {
            var decision = await audit.CheckAsync(new CredentialUse(named, routed.DatabaseName, "RPC credential",
                ClientAddress: http.Connection.RemoteIpAddress?.ToString(), Path: http.Request.Path.Value), ct);
            if (decision.Refused)
            {
                throw OdooException.Denied($"Access Denied: {decision.Message}");
            }
        }
        if (!outcome.IsRouted)
        {
            throw Refusal(http, outcome, request.Database);
        }
        var tenant = outcome.Tenant!;
        return new RpcDatabase(tenant.DatabaseName, dataSources.For(tenant.DatabaseName))
        {
            Attachments = new AttachmentStorage(files, tenant.DatabaseName, attachments.MaxBytes),
        };
    }

    public async Task<IReadOnlyList<string>> ListAsync(HttpContext http, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        return (await router.VisibleAsync(http.Request.Host.Value ?? "", ct)).Select(t => t.DatabaseName).ToList();
    }

    public async Task<bool> ExistsAsync(string db, CancellationToken ct) =>
        db.Length <= 63 && await cache.ByDatabaseAsync(db, ct) is not null;

    /// <summary>
    /// A routing refusal in Odoo's shapes: unknown and suspended or archived tenants are AccessDenied (fault 3), a
    /// tenant being provisioned or restored is a server error saying so. JSON-2 answers with the router's HTTP status
    /// (kept in the exception's Data) and every protocol gets Retry-After when the router gives one.
    /// </summary>
    private static OdooException Refusal(HttpContext http, RoutingOutcome outcome, string? db)
    {
        var message = outcome.StatusCode switch
        {
            404 when db is not null => $"Access Denied: database '{TenantRules.Printable(db)}' not found ({outcome.Message})",
            404 => $"Access Denied: no database selected (send db, or X-Odoo-Database with JSON-2): {outcome.Message}",
            _ => $"Access Denied: {outcome.Message}",
        };
        var error = outcome.StatusCode == 503
            ? new OdooException(OdooErrorKind.ServerError, outcome.Message, "werkzeug.exceptions.ServiceUnavailable")
            : OdooException.Denied(message);
        error.Data[RpcRefusals.StatusKey] = outcome.StatusCode;
        if (outcome.RetryAfterSeconds is { } retry)
        {
            http.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
        }
        return error;
    }
}

/// <summary>The HTTP status a routing refusal carries for JSON-2, which answers with real statuses.</summary>
public static class RpcRefusals
{
    public const string StatusKey = "loomworks.http_status";

    public static int? StatusOf(Exception e) => e?.Data[StatusKey] as int?;
}
