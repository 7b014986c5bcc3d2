using System.Reflection;

namespace Loomworks;

/// <summary>The VERSION file this binary was built from: Loomworks' own version and the Odoo API level it speaks.</summary>
public static class LoomworksVersion
{
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Values = new(Read);

    public static string Version => Values.Value["LOOMWORKS_VERSION"];
    public static string OdooVersion => Values.Value["ODOO_VERSION"];
    public static string UpstreamCommit => Values.Value.GetValueOrDefault("ODOO_UPSTREAM_COMMIT", "");
    public static string ReleaseDate => Values.Value.GetValueOrDefault("RELEASE_DATE", "");

    /// <summary><c>1.0.0+odoo18.0</c>: our version, with the Odoo external-API level as build metadata.</summary>
    public static string Full => $"{Version}+odoo{OdooVersion}";

    public static IReadOnlyDictionary<string, string> Parse(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var trimmed = line.Trim();
            var equals = trimmed.IndexOf('=', StringComparison.Ordinal);
            if (trimmed.Length > 0 && trimmed[0] != '#' && equals > 0)
            {
                values[trimmed[..equals]] = trimmed[(equals + 1)..];
            }
        }
        return values;
    }

    private static IReadOnlyDictionary<string, string> Read()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Loomworks.VERSION")
            ?? throw new InvalidOperationException("the VERSION resource is missing from the build");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd());
    }
}
