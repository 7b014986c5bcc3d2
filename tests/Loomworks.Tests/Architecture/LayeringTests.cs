using System.Text.RegularExpressions;
using Loomworks.Tests.Distribution;

namespace Loomworks.Tests.Architecture;

/// <summary>
/// The layering of docs/architecture.md holds in src/Loomworks: the arrows are read from the page itself, so the page and
/// the code cannot drift apart.
/// </summary>
public sealed partial class LayeringTests
{
    /// <summary>The code directly in src/Loomworks, in namespace Loomworks.</summary>
    private const string Root = "(root)";

    private static readonly string Library = Tool.Repo("src", "Loomworks");

    [Fact]
    public void Every_folder_uses_only_the_layers_below_its_own()
    {
        var page = ArchitecturePage.Read();
        var against = Arrows()
            .Where(a => a.From != a.To && page.Layers.ContainsKey(a.From) && page.Layers.ContainsKey(a.To))
            .Where(a => page.Layers[a.To] >= page.Layers[a.From])
            .ToList();
        var unlisted = against.Where(a => !page.Tolerated.Contains((a.From, a.To)))
            .Select(a => $"{a.Where}: {a.From} → {a.To} (layer {page.Layers[a.From]} may use only layers below it)")
            .ToList();
        Assert.True(unlisted.Count == 0, "Arrows against docs/architecture.md:\n" + string.Join('\n', unlisted));
        var stale = page.Tolerated.Where(t => !against.Any(a => (a.From, a.To) == t))
            .Select(t => $"{t.From} → {t.To}")
            .ToList();
        Assert.True(stale.Count == 0,
            "These arrows are gone from the code; remove their rows from docs/architecture.md:\n" + string.Join('\n', stale));
    }

    [Fact]
    public void Every_folder_of_the_library_has_a_layer()
    {
        var layers = ArchitecturePage.Read().Layers;
        var missing = Directory.GetDirectories(Library).Select(Path.GetFileName)
            .Where(folder => folder is not ("bin" or "obj") && !layers.ContainsKey(folder!))
            .ToList();
        Assert.True(missing.Count == 0, "Folders without a layer in docs/architecture.md: " + string.Join(", ", missing));
        Assert.Contains(Root, layers.Keys);
    }

    /// <summary>Other folders' types are seen only through using or a qualified name, never by sharing a namespace.</summary>
    [Fact]
    public void Every_file_is_in_its_folders_namespace()
    {
        var wrong = SourceFiles()
            .Select(file => (file.Path, file.Folder, Namespace: NamespaceLine().Match(File.ReadAllText(file.Path)).Groups[1].Value))
            .Where(f => f.Namespace != Expected(f.Folder)
                && !f.Namespace.StartsWith(Expected(f.Folder) + ".", StringComparison.Ordinal))
            .Select(f => $"{Relative(f.Path)}: namespace {f.Namespace}, expected {Expected(f.Folder)}")
            .ToList();
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));

        static string Expected(string folder) => folder == Root ? "Loomworks" : "Loomworks." + folder;
    }

    [Fact]
    public void The_page_declares_the_layers_of_the_design()
    {
        // A guard on the reader: were the table's format to change, the other tests would pass on nothing.
        var page = ArchitecturePage.Read();
        Assert.True(page.Layers["Records"] < page.Layers["Rpc"]);
        Assert.True(page.Layers["Security"] < page.Layers["Records"]);
        Assert.Equal(page.Layers["Records"], page.Layers["Tenancy"]);
        Assert.Equal(0, page.Layers["Configuration"]);
    }

    /// <summary>Every reference of a library file to another folder: using directives and qualified names.</summary>
    private static IEnumerable<(string From, string To, string Where)> Arrows()
    {
        foreach (var (path, folder) in SourceFiles())
        {
            var lines = File.ReadAllLines(path);
            for (var i = 0; i < lines.Length; i++)
            {
                var line = lines[i].TrimStart();
                if (line.StartsWith("//", StringComparison.Ordinal) || line.StartsWith("namespace ", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (var target in Targets(line))
                {
                    yield return (folder, target, $"{Relative(path)}:{i + 1}");
                }
            }
        }
    }

    /// <summary>
    /// The folders a line names: Loomworks.X anywhere (using, using static, aliases, qualified names), and X.Y for a
    /// folder X written from inside the Loomworks namespace, where it needs no prefix.
    /// </summary>
    private static IEnumerable<string> Targets(string line)
    {
        foreach (Match m in QualifiedName().Matches(line))
        {
            yield return m.Groups[1].Value;
        }
        foreach (var folder in ArchitecturePage.Read().Layers.Keys.Where(f => f != Root))
        {
            if (Regex.IsMatch(line, $@"(?<![\w.""]){folder}\.[A-Z]"))
            {
                yield return folder;
            }
        }
    }

    private static IEnumerable<(string Path, string Folder)> SourceFiles() =>
        Directory.EnumerateFiles(Library, "*.cs", SearchOption.AllDirectories)
            .Select(path => (path, Parts: Path.GetRelativePath(Library, path).Split(Path.DirectorySeparatorChar)))
            .Where(f => f.Parts[0] is not ("bin" or "obj"))
            .Select(f => (f.path, f.Parts.Length == 1 ? Root : f.Parts[0]))
            .Order();

    private static string Relative(string path) => Path.GetRelativePath(Tool.RepoRoot, path);

    [GeneratedRegex(@"(?<![\w.])Loomworks\.([A-Z]\w*)")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"^namespace ([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceLine();
}

/// <summary>The tables of docs/architecture.md: each folder's layer, and the arrows against the layering it tolerates.</summary>
internal sealed partial record ArchitecturePage(
    IReadOnlyDictionary<string, int> Layers, IReadOnlySet<(string From, string To)> Tolerated)
{
    private static readonly Lazy<ArchitecturePage> Page =
        new(() => Parse(File.ReadAllLines(Tool.Repo("docs", "architecture.md"))));

    public static ArchitecturePage Read() => Page.Value;

    private static ArchitecturePage Parse(string[] lines)
    {
        var layers = new Dictionary<string, int>(StringComparer.Ordinal);
        var tolerated = new HashSet<(string, string)>();
        string? section = null;
        foreach (var line in lines)
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                section = line[3..].Trim();
            }
            else if (section == "Layers" && LayerRow().Match(line) is { Success: true } layer)
            {
                foreach (Match folder in Backticked().Matches(layer.Groups[2].Value))
                {
                    layers.Add(folder.Groups[1].Value, int.Parse(layer.Groups[1].Value));
                }
            }
            else if (section == "Arrows against the layering" && ArrowRow().Match(line) is { Success: true } arrow)
            {
                tolerated.Add((arrow.Groups[1].Value, arrow.Groups[2].Value));
            }
        }
        Assert.True(layers.Count > 0, "docs/architecture.md has no table of layers under '## Layers'");
        return new ArchitecturePage(layers, tolerated);
    }

    [GeneratedRegex(@"^\|\s*(\d+)\s*\|([^|]*)\|")]
    private static partial Regex LayerRow();

    [GeneratedRegex(@"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|")]
    private static partial Regex ArrowRow();

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Backticked();
}
