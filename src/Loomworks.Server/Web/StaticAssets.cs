using System.Reflection;
using System.Security.Cryptography;
using Microsoft.Net.Http.Headers;

namespace Loomworks.Server.Web;

/// <summary>
/// The console's own stylesheet and script, embedded in the executable from <c>Web/wwwroot</c> so that every install
/// (package, image, a build run from any directory) serves them without a web root on disk.
/// </summary>
public static class StaticAssets
{
    public const string Prefix = "/web/assets";
    public const string StylesheetPath = Prefix + "/loomworks.css";
    public const string ScriptPath = Prefix + "/loomworks.js";

    private static readonly Dictionary<string, Asset> Assets = new(StringComparer.Ordinal)
    {
        ["loomworks.css"] = Load("loomworks.css", "text/css; charset=utf-8"),
        ["loomworks.js"] = Load("loomworks.js", "text/javascript; charset=utf-8"),
    };

    public static void MapStaticAssets(this IEndpointRouteBuilder app) =>
        app.MapGet(Prefix + "/{name}", (string name, HttpContext http) =>
        {
            if (!Assets.TryGetValue(name, out var asset))
            {
                return Results.NotFound();
            }
            http.Response.Headers.CacheControl = "no-cache";
            return http.Request.Headers.IfNoneMatch == asset.ETag
                ? Results.StatusCode(StatusCodes.Status304NotModified)
                : Results.Bytes(asset.Content, asset.ContentType, entityTag: new EntityTagHeaderValue(asset.ETag));
        });

    private static Asset Load(string name, string contentType)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Loomworks.Web." + name)
            ?? throw new InvalidOperationException($"the embedded asset {name} is missing from the build");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        var content = copy.ToArray();
        return new Asset(content, contentType, "\"" + Convert.ToHexString(SHA256.HashData(content))[..16] + "\"");
    }

    private sealed record Asset(byte[] Content, string ContentType, string ETag);
}
