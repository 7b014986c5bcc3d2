using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

public sealed class ReleaseHygieneTests
{
    private static readonly string Script = Tool.Repo("infrastructure", "release", "changelog-entry");

    [Fact]
    public async Task The_current_version_has_its_changelog_entry()
    {
        var (exitCode, output) = await Tool.RunAsync(Script, []);
        Assert.True(exitCode == 0, $"VERSION says {LoomworksVersion.Version} but CHANGELOG.md has no entry for it:\n{output}");
        Assert.StartsWith($"## [{LoomworksVersion.Version}]", output, StringComparison.Ordinal);
        Assert.Contains("\n- ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bumped_version_without_an_entry_is_refused()
    {
        using var scratch = new Scratch("changelog");
        var changelog = scratch.Write("CHANGELOG.md", "# Changelog\n\n## [1.0.0] - 2026-01-01\n\n### Added\n- [server] something\n");
        var (exitCode, output) = await Tool.RunAsync(Script, ["1.1.0", changelog]);
        Assert.Equal(1, exitCode);
        Assert.Contains("has no \"## [1.1.0]\" entry", output, StringComparison.Ordinal);
        // A prefix is not a match: 1.0.0 must not be taken for 1.0.
        Assert.Equal(1, (await Tool.RunAsync(Script, ["1.0.1", changelog])).ExitCode);
    }

    [Fact]
    public async Task An_entry_is_cut_at_the_next_version_and_must_list_a_change()
    {
        using var scratch = new Scratch("changelog");
        var changelog = scratch.Write("CHANGELOG.md",
            "# Changelog\n\n## [1.1.0] - Unreleased\n\n### Added\n\n## [1.0.0] - 2026-01-01\n\n### Added\n- [server] older\n");
        var (emptyExit, emptyOutput) = await Tool.RunAsync(Script, ["1.1.0", changelog]);
        Assert.Equal(1, emptyExit);
        Assert.Contains("lists no change", emptyOutput, StringComparison.Ordinal);
        var (exitCode, output) = await Tool.RunAsync(Script, ["1.0.0", changelog]);
        Assert.Equal(0, exitCode);
        Assert.Equal("## [1.0.0] - 2026-01-01\n\n### Added\n- [server] older\n", output);
    }

    [Theory]
    [InlineData("1.0")]
    [InlineData("1.0.0; rm -rf /")]
    [InlineData("../../etc/passwd")]
    public async Task Malformed_versions_are_refused(string version)
    {
        var (exitCode, output) = await Tool.RunAsync(Script, [version]);
        Assert.Equal(2, exitCode);
        Assert.Contains("invalid version", output, StringComparison.Ordinal);
    }
}
