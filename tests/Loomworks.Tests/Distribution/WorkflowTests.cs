using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

public sealed class WorkflowTests
{
    private static string Workflow(string name) => Tool.Repo(".github", "workflows", name);

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
        var file = scratch.File("broken.yml");
        File.WriteAllText(file,
            "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: missing\n    steps:\n      - run: echo ${{ github.nope }}\n");
        var (exitCode, output) = await LintTools.ActionlintAsync(file);
        Assert.Equal(1, exitCode);
        Assert.Contains("missing", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ci_filters_paths_checks_format_builds_tests_packages_and_the_image()
    {
        var ci = File.ReadAllText(Workflow("ci.yml"));
        Assert.Contains("dorny/paths-filter", ci, StringComparison.Ordinal);
        Assert.Contains("dotnet format Loomworks.slnx --verify-no-changes", ci, StringComparison.Ordinal);
        Assert.Contains("dotnet build Loomworks.slnx", ci, StringComparison.Ordinal);
        Assert.Contains("./dev.sh test", ci, StringComparison.Ordinal);
        Assert.Contains("postgresql-15", ci, StringComparison.Ordinal);
        Assert.Contains("infrastructure/packaging/build-packages.sh", ci, StringComparison.Ordinal);
        Assert.Contains("file: infrastructure/docker/Dockerfile", ci, StringComparison.Ordinal);
        Assert.DoesNotContain("ubuntu-24.04", ci, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_builds_both_architectures_pushes_a_multi_arch_image_and_publishes_checksums_and_notes()
    {
        var release = File.ReadAllText(Workflow("release.yml"));
        Assert.Contains("- 'v*'", release, StringComparison.Ordinal);
        Assert.Contains("arch: [amd64, arm64]", release, StringComparison.Ordinal);
        Assert.Contains("platforms: linux/amd64,linux/arm64", release, StringComparison.Ordinal);
        Assert.Contains("SHA256SUMS", release, StringComparison.Ordinal);
        Assert.Contains("infrastructure/release/changelog-entry", release, StringComparison.Ordinal);
        Assert.Contains("body_path: release-notes.md", release, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upstream_sync_runs_daily_through_upstream_check()
    {
        var sync = File.ReadAllText(Workflow("upstream-sync.yml"));
        Assert.Contains("cron: '0 2 * * *'", sync, StringComparison.Ordinal);
        Assert.Contains("infrastructure/release/upstream-check --repo . --ref upstream/18.0", sync, StringComparison.Ordinal);
        Assert.Contains("--sync-branch", sync, StringComparison.Ordinal);
        Assert.Contains("20) echo \"status=security\"", sync, StringComparison.Ordinal);
    }
}
