using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

public sealed class ShellScriptTests
{
    private static readonly string[] Skipped = ["bin", "obj", "node_modules", ".git", "TestResults", "artifacts", ".data"];

    /// <summary>Every file of the repository that a shell runs: by extension or by its #! line.</summary>
    public static List<string> ShellScripts()
    {
        var scripts = new List<string>();
        var pending = new Stack<string>([Tool.RepoRoot]);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            foreach (var sub in Directory.EnumerateDirectories(dir))
            {
                if (!Skipped.Contains(Path.GetFileName(sub)))
                {
                    pending.Push(sub);
                }
            }
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                if (file.EndsWith(".sh", StringComparison.Ordinal) || IsShellByShebang(file))
                {
                    scripts.Add(file);
                }
            }
        }
        scripts.Sort(StringComparer.Ordinal);
        return scripts;
    }

    [Fact]
    public async Task Every_shell_script_passes_shellcheck()
    {
        var scripts = ShellScripts();
        var relative = scripts.Select(s => Path.GetRelativePath(Tool.RepoRoot, s)).ToList();
        foreach (var expected in new[] { "dev.sh", ".ci/run", "infrastructure/docker/entrypoint.sh",
            "infrastructure/packaging/build-packages.sh",
                     "infrastructure/packaging/debian/postinst", "infrastructure/packaging/debian/postrm",
                     "infrastructure/release/upstream-check", "infrastructure/release/changelog-entry", "infrastructure/tools/install.sh" })
        {
            Assert.Contains(expected, relative);
        }
        var (exitCode, output) = await Tool.RunAsync("shellcheck", ["--external-sources", .. scripts]);
        Assert.True(exitCode == 0, output);
    }

    [Fact]
    public async Task Shellcheck_catches_an_unquoted_variable()
    {
        using var scratch = new Scratch("shellcheck");
        var file = scratch.Write("bad.sh", "#!/bin/bash\nrm -rf $1/*\n");
        var (exitCode, output) = await Tool.RunAsync("shellcheck", [file]);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("SC2086", output, StringComparison.Ordinal);
    }

    private static bool IsShellByShebang(string file)
    {
        using var stream = File.OpenRead(file);
        var head = new byte[64];
        var read = stream.Read(head, 0, head.Length);
        var line = System.Text.Encoding.ASCII.GetString(head, 0, read).Split('\n')[0];
        return line.StartsWith("#!", StringComparison.Ordinal)
               && (line.EndsWith("/sh", StringComparison.Ordinal) || line.EndsWith("bash", StringComparison.Ordinal));
    }
}
