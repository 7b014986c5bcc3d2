using System.Text.RegularExpressions;

namespace Loomworks.Backups;

/// <summary>A database made by the manager is a tenant whose subdomain is its name, so names follow the subdomain rule.</summary>
public static partial class DatabaseNames
{
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string>(StringComparer.Ordinal)
    {
        "www", "api", "admin", "postgres", "template0", "template1", "loomworks_mgmt",
    };

    [GeneratedRegex("^[a-z][a-z0-9-]{2,62}$")]
    private static partial Regex Subdomain();

    /// <summary>Why <paramref name="name"/> cannot name a database, or null when it can.</summary>
    public static string? Problem(string? name, string? managementDatabase = null)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "a database name is required";
        }
        if (!Subdomain().IsMatch(name))
        {
            return $"'{Shorten(name)}' is not a valid database name: it must be 3 to 63 lower-case letters, digits or hyphens, " +
                "starting with a letter (it becomes the tenant's subdomain)";
        }
        if (Reserved.Contains(name) || name == managementDatabase)
        {
            return $"'{name}' is reserved";
        }
        return null;
    }

    /// <summary>Throws <see cref="DatabaseManagerException"/> with <see cref="Problem"/> when the name is not acceptable.</summary>
    public static void Check(string? name, string? managementDatabase = null)
    {
        if (Problem(name, managementDatabase) is { } problem)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidName, problem);
        }
    }

    private static string Shorten(string name) => name.Length > 80 ? name[..80] + "…" : name;
}
