using Loomworks.Tests.Distribution;

namespace Loomworks.Tests.Architecture;

/// <summary>The limits of docs/architecture.md and DESIGN.md on the size of source files.</summary>
public sealed class CodeShapeTests
{
    /// <summary>Past this, a file holds several rooms: split it along its seams.</summary>
    private const int MaxFileLines = 600;

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

    /// <summary>The C# files under a top folder of the repository, without build output.</summary>
    internal static IEnumerable<string> CSharpFiles(string top) =>
        Directory.EnumerateFiles(Tool.Repo(top), "*.cs", SearchOption.AllDirectories)
            .Where(path => !Path.GetRelativePath(Tool.RepoRoot, path).Split(Path.DirectorySeparatorChar)
                .Any(part => part is "bin" or "obj"))
            .Order(StringComparer.Ordinal);
}
