using System.Diagnostics;
using System.Text;

namespace Loomworks.Tests.Distribution;

/// <summary>Runs the real command-line tools the distribution is checked with (dpkg, rpm, lintian, shellcheck, …).</summary>
public static class Tool
{
    /// <summary>The repository checkout these tests were built from (the folder holding Loomworks.slnx).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Repo(params string[] parts) => Path.Combine([RepoRoot, .. parts]);

    public static bool Exists(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    /// <summary>Runs a program to its end; stdout and stderr are returned together, in order of arrival.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string program, IEnumerable<string> arguments,
        string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? RepoRoot,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // The test host's MSBuild and loomworks settings must not reach nested builds or the programs under test.
        foreach (var name in info.Environment.Keys
                     .Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
                                 || k.StartsWith("LOOMWORKS_", StringComparison.Ordinal)
                                 || k is "DOTNET_HOST_PATH" or "MSBuildExtensionsPath" or "MSBuildSDKsPath")
                     .ToList())
        {
            info.Environment.Remove(name);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            info.Environment[name] = value;
        }
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancellation = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cancellation.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in time:\n{Text()}");
        }
        // WaitForExitAsync returns once the streams are drained too.
        return (process.ExitCode, Text());

        void Append(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (output)
            {
                output.AppendLine(line);
            }
        }

        string Text()
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>Runs a program and fails the test, showing its output, unless it exits 0.</summary>
    public static async Task<string> RunOkAsync(string program, params string[] arguments)
    {
        var (exitCode, output) = await RunAsync(program, arguments);
        Assert.True(exitCode == 0, $"{program} {string.Join(' ', arguments)} exited {exitCode}:\n{output}");
        return output;
    }

    /// <summary>Asserts that a file's text holds every one of the given pieces, naming the first one missing.</summary>
    public static void AssertContainsAll(string text, params string[] parts)
    {
        foreach (var part in parts)
        {
            Assert.Contains(part, text, StringComparison.Ordinal);
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Loomworks.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Loomworks.slnx above {AppContext.BaseDirectory}");
    }
}
