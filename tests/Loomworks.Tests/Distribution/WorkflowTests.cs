using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

public sealed class WorkflowTests
{
    private static string Workflow(string name) => Tool.Repo(".github", "workflows", name);

    /// <summary>The text of the workflow <paramref name="name"/>, which must contain each of <paramref name="parts"/>.</summary>
    private static string AssertWorkflowContains(string name, params string[] parts)
    {
        var text = File.ReadAllText(Workflow(name));
        Tool.AssertContainsAll(text, parts);
        return text;
    }

    [Fact]
    public async Task Every_workflow_passes_actionlint()
    {
        var files = Directory.GetFiles(Tool.Repo(".github", "workflows"), "*.yml").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["ci.yml", "release.yml", "upstream-sync.yml"], files.Select(Path.GetFileName));
        var (exitCode, output) = await LintTools.ActionlintAsync(files);
        Assert.True(exitCode == 0, output);
    }

    [Fact]
    public async Task Actionlint_catches_a_broken_workflow()
    {
        using var scratch = new Scratch("workflow");
        var file = scratch.Write("broken.yml",
            "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: missing\n    steps:\n      - run: echo ${{ github.nope }}\n");
        var (exitCode, output) = await LintTools.ActionlintAsync(file);
        Assert.Equal(1, exitCode);
        Assert.Contains("missing", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ci_filters_paths_checks_format_builds_tests_packages_and_the_image()
    {
        var ci = AssertWorkflowContains("ci.yml",
            "dorny/paths-filter",
            "dotnet format Loomworks.slnx --verify-no-changes",
            "dotnet build Loomworks.slnx",
            "./dev.sh test",
            "postgresql-15",
            "infrastructure/packaging/build-packages.sh",
            "file: infrastructure/docker/Dockerfile");
        Assert.DoesNotContain("ubuntu-24.04", ci, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_builds_both_architectures_pushes_a_multi_arch_image_and_publishes_checksums_and_notes()
    {
        AssertWorkflowContains("release.yml",
            "- 'v*'",
            "arch: [amd64, arm64]",
            "platforms: linux/amd64,linux/arm64",
            "SHA256SUMS",
            "infrastructure/release/changelog-entry",
            "body_path: release-notes.md");
    }

    [Fact]
    public async Task Upstream_sync_runs_daily_through_upstream_check()
    {
        AssertWorkflowContains("upstream-sync.yml",
            "cron: '0 2 * * *'",
            "infrastructure/release/upstream-check --repo . --ref upstream/18.0",
            "--sync-branch",
            "20) echo \"status=security\"");
    }
}
