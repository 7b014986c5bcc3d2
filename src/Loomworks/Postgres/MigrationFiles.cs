using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace Loomworks.Postgres;

/// <summary>
/// Migrations written out in full as SQL files embedded in the library, <c>NNNN_name.sql</c> in a feature's
/// <c>Migrations</c> folder. A file starts with a header of comment lines that ends at the first empty line; its first
/// line is <c>-- migration N: name</c>. The migration's SQL is the rest of the file but its final newline, exactly as
/// written: a released migration is history that every new database replays.
/// </summary>
public static partial class MigrationFiles
{
    /// <summary>Every embedded migration file is named Loomworks/ and its path under src/Loomworks (the csproj says so).</summary>
    private const string ResourcePrefix = "Loomworks/";

    [GeneratedRegex(@"^(?<version>\d{4})_[a-z0-9_]+\.sql$")]
    private static partial Regex FileName();

    [GeneratedRegex(@"^-- migration (?<version>\d+): (?<name>\S.*)$")]
    private static partial Regex FirstHeaderLine();

    private static Assembly Library => typeof(MigrationFiles).Assembly;

    /// <summary>
    /// The migrations in <paramref name="folder"/> (a path under src/Loomworks, e.g. <c>Operations/Migrations</c>; not
    /// its subfolders) in version order.
    /// </summary>
    public static IReadOnlyList<Migration> Load(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var prefix = folder.TrimEnd('/') + "/";
        var migrations = Paths()
            .Where(p => p.StartsWith(prefix, StringComparison.Ordinal) && !p.AsSpan(prefix.Length).Contains('/'))
            .Select(Read).OrderBy(m => m.Version).ToList();
        if (migrations.Count == 0)
        {
            throw new InvalidOperationException($"no migration files are embedded under {folder}");
        }
        var duplicate = migrations.GroupBy(m => m.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException($"two migration files under {folder} have version {duplicate.Key}");
        }
        return migrations;
    }

    /// <summary>The paths under src/Loomworks of every embedded migration file, for checks that each one is loaded.</summary>
    public static IReadOnlyList<string> Paths() =>
        [.. Library.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..]).Order(StringComparer.Ordinal)];

    private static Migration Read(string path)
    {
        using var stream = Library.GetManifestResourceStream(ResourcePrefix + path)!;
        using var reader = new StreamReader(stream, new UTF8Encoding(false, true), detectEncodingFromByteOrderMarks: false);
        return Parse(path, reader.ReadToEnd());
    }

    /// <summary>The migration a file at <paramref name="path"/> holding <paramref name="text"/> defines.</summary>
    internal static Migration Parse(string path, string text)
    {
        var fileName = FileName().Match(Path.GetFileName(path));
        if (!fileName.Success)
        {
            throw new InvalidOperationException($"migration file {path} is not named NNNN_name.sql (lower case, digits and _)");
        }
        // Checked rather than normalised: the SQL a database runs is the file's text, never a rewrite of it.
        if (text.Contains('\r', StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"migration file {path} has CR line endings; migrations are LF only");
        }
        var headerEnd = text.IndexOf("\n\n", StringComparison.Ordinal);
        if (headerEnd < 0 || !text.EndsWith('\n') || string.IsNullOrWhiteSpace(text[(headerEnd + 2)..]))
        {
            throw new InvalidOperationException($"migration file {path} needs a header, an empty line, its SQL and a final newline");
        }
        var header = text[..headerEnd].Split('\n');
        var version = int.Parse(fileName.Groups["version"].Value, CultureInfo.InvariantCulture);
        var first = FirstHeaderLine().Match(header[0]);
        if (!first.Success || first.Groups["version"].Value != version.ToString(CultureInfo.InvariantCulture))
        {
            throw new InvalidOperationException($"migration file {path} must start with the line '-- migration {version}: <name>'");
        }
        if (header.Any(l => !l.StartsWith("--", StringComparison.Ordinal)))
        {
            throw new InvalidOperationException($"migration file {path} has a header line that is not a comment");
        }
        return new Migration(version, first.Groups["name"].Value, text[(headerEnd + 2)..^1]);
    }
}
