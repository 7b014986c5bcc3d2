using System.Security.Cryptography;
using System.Text;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.DataProtection;

namespace Loomworks.Server.Web.Operators;

/// <summary>
/// The operator console's sign-in: once the master password has been given, a cookie protected by the server's
/// data-protection keys (shared by every instance) stands for it for <see cref="Lifetime"/>. The cookie carries a
/// digest of the stored master password, so changing the password ends every operator session at once.
/// </summary>
public sealed class OperatorSession(IDataProtectionProvider protection, MasterPassword master)
{
    public const string CookieName = "loomworks_operator";
    public const string Path = "/console/tenants";
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(15);
    private const string Purpose = "Loomworks.Web.OperatorSession";

    private ITimeLimitedDataProtector Protector => protection.CreateProtector(Purpose).ToTimeLimitedDataProtector();

    /// <summary>Checks the master password (with its lockout) and, when right, gives the browser the operator cookie.</summary>
    public async Task<MasterPasswordResult> SignInAsync(HttpContext http, string? password)
    {
        ArgumentNullException.ThrowIfNull(http);
        var client = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var result = await master.VerifyAsync(string.IsNullOrEmpty(password) ? null : password, client, http.RequestAborted);
        if (result == MasterPasswordResult.Accepted && await master.StoredAsync(http.RequestAborted) is { } stored)
        {
            http.Response.Cookies.Append(CookieName, Protector.Protect(Digest(stored), Lifetime), Options(http, Lifetime));
        }
        return result;
    }

    /// <summary>Whether the request carries a live operator cookie issued under the current master password.</summary>
    public async Task<bool> IsSignedInAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.Request.Cookies[CookieName] is not { Length: > 0 and <= 4096 } cookie
            || await master.StoredAsync(http.RequestAborted) is not { } stored)
        {
            return false;
        }
        try
        {
            return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(Protector.Unprotect(cookie)),
                Encoding.UTF8.GetBytes(Digest(stored)));
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    public static void SignOut(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.Response.Cookies.Delete(CookieName, Options(http, TimeSpan.Zero));
    }

    private static string Digest(string storedHash) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(storedHash)));

    private static CookieOptions Options(HttpContext http, TimeSpan maxAge) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = http.Request.IsHttps,
        Path = Path,
        MaxAge = maxAge,
        IsEssential = true,
    };
}
