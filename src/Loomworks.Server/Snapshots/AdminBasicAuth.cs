using System.Security.Cryptography;
using System.Text;
using Loomworks.Configuration;

namespace Loomworks.Server.Snapshots;

/// <summary>
/// The admin API's authentication in one place: HTTP Basic with user <c>admin</c> and admin_passwd, compared in
/// constant time. Without admin_passwd the admin API stays closed. Tenancy's master-password check replaces this.
/// </summary>
public sealed class AdminBasicAuth(LoomworksSettings settings) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (settings.AdminPassword is not { Length: > 0 } password)
        {
            return TypedResults.Problem("the admin API is off until admin_passwd is set", statusCode: StatusCodes.Status403Forbidden);
        }
        return IsAdmin(context.HttpContext.Request.Headers.Authorization.ToString(), password)
            ? await next(context)
            : Unauthorized(context.HttpContext);
    }

    internal static bool IsAdmin(string header, string password)
    {
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) || header.Length > 1024)
        {
            return false;
        }
        byte[] decoded;
        try
        {
            decoded = Convert.FromBase64String(header["Basic ".Length..].Trim());
        }
        catch (FormatException)
        {
            return false;
        }
        var expected = Encoding.UTF8.GetBytes("admin:" + password);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(decoded), SHA256.HashData(expected));
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult Unauthorized(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Basic realm=\"loomworks admin\"";
        return TypedResults.Problem("admin credentials are required (HTTP Basic, user admin, the master password)",
            statusCode: StatusCodes.Status401Unauthorized);
    }
}
