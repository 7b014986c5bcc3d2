using System.Security.Cryptography;
using System.Text;
using Loomworks.Configuration;

namespace Loomworks.Server.Operations;

/// <summary>
/// HTTP Basic <c>admin</c> + admin_passwd for the admin REST API, compared in constant time. The one place that
/// decides, so the master-password store can replace it without touching the endpoints.
/// </summary>
public static class AdminCredentials
{
    public const string User = "admin";

    /// <summary>Null when the request may pass; otherwise the answer to send (401 with a challenge, or 403 when the API is off).</summary>
    public static IResult? Check(HttpContext context, LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(settings);
        if (string.IsNullOrEmpty(settings.AdminPassword))
        {
            return TypedResults.Problem("the admin API is off until admin_passwd is set", statusCode: StatusCodes.Status403Forbidden);
        }
        var header = context.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) && header.Length < 4096
            && Decode(header["Basic ".Length..]) is { } pair
            && pair.IndexOf(':', StringComparison.Ordinal) is var colon and > 0
            && Same(pair[..colon], User) & Same(pair[(colon + 1)..], settings.AdminPassword))
        {
            return null;
        }
        context.Response.Headers.WWWAuthenticate = "Basic realm=\"loomworks admin\"";
        return TypedResults.Problem("admin credentials required (HTTP Basic: admin and the master password)",
            statusCode: StatusCodes.Status401Unauthorized);
    }

    private static string? Decode(string value)
    {
        var bytes = new byte[value.Length];
        return Convert.TryFromBase64String(value.Trim(), bytes, out var written) ? Encoding.UTF8.GetString(bytes, 0, written) : null;
    }

    // Hashing first makes the comparison's time independent of both lengths.
    private static bool Same(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
