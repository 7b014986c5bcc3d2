namespace Loomworks.Tenancy.Routing;

/// <summary>The tenant a request was routed to, kept in <c>HttpContext.Features</c> by the routing middleware.</summary>
public sealed record TenantFeature(Tenant Tenant, string Method);
