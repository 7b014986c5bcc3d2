using Loomworks.Tests.Distribution;

namespace Loomworks.Tests.Architecture;

/// <summary>The limits DESIGN.md sets on source files: their length and the length of their lines.</summary>
public sealed class CodeShapeTests
{
    /// <summary>Past this, a file holds several rooms: split it along its seams.</summary>
    private const int MaxFileLines = 600;

    /// <summary>A line a reader takes in without scrolling, in a side-by-side diff too.</summary>
    private const int MaxLineLength = 140;

    /// <summary>Where the C# of the repository lives.</summary>
    private static readonly string[] CodeFolders = ["src", "tests", "bench"];

    [Fact]
    public void No_source_file_is_longer_than_600_lines()
    {
        var tooLong = CSharpFiles("src")
            .Select(path => (path, Lines: File.ReadLines(path).Count()))
            .Where(f => f.Lines > MaxFileLines)
            .Select(f => $"{Path.GetRelativePath(Tool.RepoRoot, f.path)}: {f.Lines} lines")
            .ToList();
        Assert.True(tooLong.Count == 0, $"Files over {MaxFileLines} lines:\n" + string.Join('\n', tooLong));
    }

    [Fact]
    public void No_line_of_CSharp_is_longer_than_140_characters()
    {
        var tooLong = CodeFolders.SelectMany(CSharpFiles)
            .Select(path => (path, Lines: File.ReadLines(path)
                .Select((line, index) => (Number: index + 1, line.Length))
                .Where(l => l.Length > MaxLineLength)
                .Select(l => l.Number)
                .ToList()))
            .Where(f => f.Lines.Count > 0)
            .ToList();
        Assert.True(tooLong.Count == 0,
            $"{tooLong.Sum(f => f.Lines.Count)} lines over {MaxLineLength} characters in {tooLong.Count} files:\n"
            + string.Join('\n', tooLong.Select(f => $"{Path.GetRelativePath(Tool.RepoRoot, f.path)}: {string.Join(", ", f.Lines)}")));
    }

    /// <summary>The C# files under a top folder of the repository, without build output.</summary>
    internal static IEnumerable<string> CSharpFiles(string top) =>
        Directory.EnumerateFiles(Tool.Repo(top), "*.cs", SearchOption.AllDirectories)
            .Where(path => !Path.GetRelativePath(Tool.RepoRoot, path).Split(Path.DirectorySeparatorChar)
                .Any(part => part is "bin" or "obj"))
            .Order(StringComparer.Ordinal);
}
