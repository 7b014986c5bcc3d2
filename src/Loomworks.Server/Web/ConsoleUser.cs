using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;

namespace Loomworks.Server.Web;

/// <summary>
/// The signed-in user of a console page: the tenant the request was routed to and the live web session of that very
/// tenant's database. Console pages receive it as a cascading parameter from <c>ConsoleLayout</c>.
/// </summary>
public sealed record ConsoleUser(Tenant Tenant, WebSession Session)
{
    public const string LoginPage = "/web/login";

    public long Uid => Session.User.Uid;
    public string Login => Session.User.Login;
    public RpcDatabase Database => Session.Database;

    /// <summary>
    /// The user of this request, or null: no tenant routed, no session, a session of another tenant (refused and
    /// audited by the gate), or a session that has expired.
    /// </summary>
    public static async Task<ConsoleUser?> SignedInAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.Features.Get<TenantFeature>() is not { } routed)
        {
            return null;
        }
        try
        {
            var session = await http.RequestServices.GetRequiredService<WebSessionGate>().RequireAsync(http, http.RequestAborted);
            return new ConsoleUser(routed.Tenant, session);
        }
        catch (OdooException)
        {
            return null;
        }
    }

    /// <summary>The login page, asked to come back to this page after sign-in.</summary>
    public static string LoginPath(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var back = http.Request.Path.Value + http.Request.QueryString.Value;
        return back is "/console" or "/" ? LoginPage : LoginPage + "?redirect=" + Uri.EscapeDataString(back);
    }

    /// <summary>A path on this server to go to after sign-in; anything else (another host, odd characters) is /console.</summary>
    public static string LocalTarget(string? target) =>
        target is { Length: > 0 and <= 2000 } && target[0] == '/' && !target.StartsWith("//", StringComparison.Ordinal)
            && !target.StartsWith("/\\", StringComparison.Ordinal) && !target.Any(char.IsControl)
            ? target
            : "/console";
}

/// <summary>The links of the tenant console's navigation, in order.</summary>
public static class ConsoleNavigation
{
    public static readonly IReadOnlyList<(string Href, string Label)> Links =
    [
        ("/console", "Overview"),
        ("/console/operations", "Operations"),
        ("/console/snapshots", "Snapshots"),
        ("/console/api-keys", "API keys"),
        ("/console/records", "Records"),
    ];
}
