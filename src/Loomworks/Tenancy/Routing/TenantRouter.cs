using System.Text.RegularExpressions;

namespace Loomworks.Tenancy.Routing;

/// <summary>
/// What routing looks at: the effective host (X-Forwarded-Host already applied, only in proxy_mode and only from
/// trusted proxies), the tenant header's value, and the database the request names (an RPC call's <c>db</c> or
/// the X-Odoo-Database header).
/// </summary>
public sealed record RoutingRequest(string Host, string? TenantHeader, string? Database);

/// <summary>Where a request goes: a tenant, or a refusal with its HTTP status, a short code and a message saying why.</summary>
public sealed record RoutingOutcome(Tenant? Tenant, int StatusCode, string Code, string Message, int? RetryAfterSeconds = null)
{
    public bool IsRouted => Tenant is not null && StatusCode == 200;

    public static RoutingOutcome Routed(Tenant tenant, string method) => new(tenant, 200, "routed", $"routed by {method}");

    public static RoutingOutcome Unknown(string message) => new(null, 404, "tenant_unknown", message);
}

/// <summary>
/// Finds a request's tenant in DESIGN.md's order: the tenant header (only a trusted client's reaches here, see
/// <see cref="TenantHeaderTrust"/>; dbfilter still applies to it), a subdomain of loomworks_base_domain (exact
/// suffix; www, api and admin are not tenants), the request's database, dbfilter (%h, %d; matched against the whole
/// name, never as a prefix), then the single-database rule. The tenant found is then checked for its state.
/// </summary>
public sealed class TenantRouter(TenantCache cache, TenancyOptions options)
{
    public const int RetryAfterSeconds = 5;
    private static readonly HashSet<string> ReservedHosts = new(StringComparer.Ordinal) { "www", "api", "admin" };
    private readonly Regex? _filter = options.DbFilter is { } f && !f.Contains('%', StringComparison.Ordinal)
        ? new Regex("^(?:" + f + ")$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100))
        : null;

    public async Task<RoutingOutcome> RouteAsync(RoutingRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var host = NormaliseHost(request.Host);

        if (options.TenantHeader is not null && !string.IsNullOrEmpty(request.TenantHeader))
        {
            var name = request.TenantHeader.Trim().ToLowerInvariant();
            if (TenantRules.SubdomainProblem(name) is not null && name.Length > 63)
            {
                return RoutingOutcome.Unknown($"the {options.TenantHeader} header names no tenant");
            }
            var tenant = await cache.BySubdomainAsync(name, ct);
            if (tenant is null)
            {
                return RoutingOutcome.Unknown($"no tenant '{TenantRules.Printable(name)}' (named by the {options.TenantHeader} header)");
            }
            // The header picks among the databases this host serves; it never reaches one dbfilter refuses.
            return Filter(host) is { } headerFilter && !headerFilter.IsMatch(tenant.DatabaseName)
                ? RoutingOutcome.Unknown(
                    $"database '{tenant.DatabaseName}' (named by the {options.TenantHeader} header) is not served on this host (dbfilter)")
                : Check(tenant, "header");
        }

        if (options.BaseDomain is { } baseDomain && host.EndsWith("." + baseDomain, StringComparison.Ordinal))
        {
            var label = host[..^(baseDomain.Length + 1)];
            if (!label.Contains('.', StringComparison.Ordinal) && !ReservedHosts.Contains(label))
            {
                var tenant = label.Length <= 63 ? await cache.BySubdomainAsync(label, ct) : null;
                return tenant is null
                    ? RoutingOutcome.Unknown(
                        $"no tenant '{TenantRules.Printable(label)}' (named by the host {TenantRules.Printable(host)})")
                    : Check(tenant, "subdomain");
            }
        }

        var filter = Filter(host);
        if (!string.IsNullOrEmpty(request.Database))
        {
            var database = request.Database;
            var tenant = database.Length <= 63 ? await cache.ByDatabaseAsync(database, ct) : null;
            if (tenant is null)
            {
                return RoutingOutcome.Unknown($"no tenant database '{TenantRules.Printable(database)}' (named by the request)");
            }
            if (filter is not null && !filter.IsMatch(tenant.DatabaseName))
            {
                return RoutingOutcome.Unknown($"database '{tenant.DatabaseName}' is not served on this host (dbfilter)");
            }
            return Check(tenant, "database");
        }

        var all = await cache.AllAsync(ct);
        IReadOnlyList<Tenant> candidates;
        string method;
        if (filter is not null)
        {
            candidates = all.Where(t => filter.IsMatch(t.DatabaseName)).ToList();
            method = "dbfilter";
        }
        else if (options.DbNames.Count > 0)
        {
            candidates = all.Where(t => options.DbNames.Contains(t.DatabaseName, StringComparer.Ordinal)).ToList();
            method = "db_name";
        }
        else
        {
            candidates = all;
            method = "single database";
        }
        return candidates.Count switch
        {
            1 => Check(candidates[0], method),
            0 => RoutingOutcome.Unknown(method == "single database"
                ? "no tenant exists yet"
                : $"no tenant database matches {method} for host '{TenantRules.Printable(host)}'"),
            _ => RoutingOutcome.Unknown(
                $"{candidates.Count} tenant databases match {method}; "
                + $"name one with the {options.TenantHeader ?? "tenant"} header, a subdomain or db"),
        };
    }

    /// <summary>
    /// The served tenants (active or suspended) a request on <paramref name="host"/> may see, as Odoo's database list:
    /// those dbfilter matches (whole name), else those db_name names, else all.
    /// </summary>
    public async Task<IReadOnlyList<Tenant>> VisibleAsync(string host, CancellationToken ct)
    {
        var filter = Filter(NormaliseHost(host));
        return (await cache.AllAsync(ct))
            .Where(t => t.State is TenantStates.Active or TenantStates.Suspended)
            .Where(t => filter is not null ? filter.IsMatch(t.DatabaseName)
                : options.DbNames.Count == 0 || options.DbNames.Contains(t.DatabaseName, StringComparer.Ordinal))
            .OrderBy(t => t.DatabaseName, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Odoo's host for dbfilter: no port, no leading www., lower case.</summary>
    public static string NormaliseHost(string host)
    {
        var h = (host ?? "").Trim().ToLowerInvariant();
        if (h.StartsWith('['))
        {
            var end = h.IndexOf(']', StringComparison.Ordinal);
            h = end > 0 ? h[..(end + 1)] : h;
        }
        else if (h.IndexOf(':', StringComparison.Ordinal) is var colon and > 0)
        {
            h = h[..colon];
        }
        return h.StartsWith("www.", StringComparison.Ordinal) ? h[4..] : h;
    }

    private Regex? Filter(string host)
    {
        if (options.DbFilter is not { } pattern)
        {
            return null;
        }
        if (_filter is not null)
        {
            return _filter;
        }
        var first = host.Split('.')[0];
        var expanded = pattern.Replace("%h", Regex.Escape(host), StringComparison.Ordinal)
            .Replace("%d", Regex.Escape(first), StringComparison.Ordinal);
        return new Regex("^(?:" + expanded + ")$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
    }

    private static RoutingOutcome Check(Tenant tenant, string method) => tenant.State switch
    {
        TenantStates.Active => RoutingOutcome.Routed(tenant, method),
        TenantStates.Suspended => new RoutingOutcome(tenant, 403, "tenant_suspended",
            $"tenant '{tenant.Subdomain}' is suspended"),
        TenantStates.Archived => new RoutingOutcome(tenant, 403, "tenant_archived",
            $"tenant '{tenant.Subdomain}' is archived and no longer served"),
        TenantStates.Restoring => new RoutingOutcome(tenant, 503, "tenant_restoring",
            $"tenant '{tenant.Subdomain}' is being restored; try again shortly", RetryAfterSeconds),
        _ => new RoutingOutcome(tenant, 503, "tenant_provisioning",
            $"tenant '{tenant.Subdomain}' is being provisioned; try again shortly", RetryAfterSeconds),
    };
}
