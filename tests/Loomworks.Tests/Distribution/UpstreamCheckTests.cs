using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

/// <summary>upstream-check against a fixture upstream and fork built with git for each test.</summary>
public sealed class UpstreamCheckTests : IDisposable
{
    private static readonly string Script = Tool.Repo("infrastructure", "release", "upstream-check");
    private readonly Scratch _scratch = new("upstream");
    private readonly string _upstream;
    private readonly string _fork;

    public UpstreamCheckTests()
    {
        _upstream = _scratch.File("upstream");
        _fork = _scratch.File("fork");
    }

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public async Task Nothing_new_exits_0()
    {
        await CreateAsync();
        var (exitCode, output) = await CheckAsync();
        Assert.Equal(0, exitCode);
        Assert.Contains("0 new upstream commit(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task New_commits_are_listed_and_exit_10()
    {
        await CreateAsync();
        var first = await UpstreamCommitAsync("stock.py", "a", "[FIX] stock: rounding of quants");
        var second = await UpstreamCommitAsync("sale.py", "b", "[IMP] sale: faster order lines");
        var (exitCode, output) = await CheckAsync();
        Assert.Equal(10, exitCode);
        Assert.Contains($"{first} [FIX] stock: rounding of quants", output, StringComparison.Ordinal);
        Assert.Contains($"{second} [IMP] sale: faster order lines", output, StringComparison.Ordinal);
        Assert.DoesNotContain("SECURITY", output, StringComparison.Ordinal);
        Assert.Contains("2 new upstream commit(s)", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[FIX] web: escape the label", "Prevents a stored XSS in kanban labels.")]
    [InlineData("[FIX] base: CVE-2025-1234", "")]
    [InlineData("[FIX] orm: quote the order clause", "An sql INJECTION through order.")]
    [InlineData("[FIX] http: check the token", "csrf token was not checked on /web/session")]
    [InlineData("[SEC] mail: Security fix for attachments", "")]
    public async Task Security_keywords_in_subject_or_body_flag_the_commit_and_exit_20(string subject, string body)
    {
        await CreateAsync();
        await UpstreamCommitAsync("plain.py", "a", "[IMP] plain change");
        var flagged = await UpstreamCommitAsync("fix.py", "b", subject, body);
        var (exitCode, output) = await CheckAsync();
        Assert.Equal(20, exitCode);
        Assert.Contains($"SECURITY {flagged} {subject}", output, StringComparison.Ordinal);
        Assert.DoesNotContain("SECURITY " + (await GitAsync(_upstream, "rev-parse", "HEAD~1")).Trim(), output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_branch_merges_upstream_and_records_the_commit()
    {
        await CreateAsync();
        var upstreamHead = await UpstreamCommitAsync("stock.py", "upstream change\n", "[FIX] stock: rounding");
        await GitAsync(_fork, "fetch", "--quiet", _upstream, "main:refs/remotes/upstream/main");
        var (exitCode, output) = await CheckAsync("--sync-branch", "upstream-sync/test");
        Assert.Equal(10, exitCode);
        Assert.DoesNotContain("CONFLICT", output, StringComparison.Ordinal);
        Assert.Equal("upstream-sync/test", (await GitAsync(_fork, "branch", "--show-current")).Trim());
        await GitAsync(_fork, "merge-base", "--is-ancestor", upstreamHead, "HEAD");
        Assert.Equal("upstream change\n", File.ReadAllText(Path.Combine(_fork, "stock.py")));
        Assert.Contains($"ODOO_UPSTREAM_COMMIT={upstreamHead}", File.ReadAllText(Path.Combine(_fork, "VERSION")), StringComparison.Ordinal);
        // Run again on the synced branch: nothing is new any more.
        Assert.Equal(0, (await CheckAsync()).ExitCode);
    }

    [Fact]
    public async Task Sync_branch_with_conflicts_lists_them_and_commits_the_markers()
    {
        await CreateAsync();
        File.WriteAllText(Path.Combine(_fork, "shared.py"), "ours\n");
        await GitAsync(_fork, "commit", "--quiet", "-am", "Loomworks change to shared.py");
        await UpstreamCommitAsync("shared.py", "theirs\n", "[FIX] shared: upstream change");
        await GitAsync(_fork, "fetch", "--quiet", _upstream, "main:refs/remotes/upstream/main");
        var (exitCode, output) = await CheckAsync("--sync-branch", "upstream-sync/conflicted");
        Assert.Equal(10, exitCode);
        Assert.Contains("CONFLICT shared.py", output, StringComparison.Ordinal);
        Assert.Contains("<<<<<<<", File.ReadAllText(Path.Combine(_fork, "shared.py")), StringComparison.Ordinal);
        var log = await GitAsync(_fork, "log", "--format=%s%n%b", "-2");
        Assert.Contains("with conflicts", log, StringComparison.Ordinal);
        Assert.Contains("shared.py", log, StringComparison.Ordinal);
        Assert.Equal("", (await GitAsync(_fork, "status", "--porcelain")).Trim());
    }

    [Fact]
    public async Task Wrong_input_is_refused_with_a_reason_and_changes_nothing()
    {
        await CreateAsync();
        await UpstreamCommitAsync("a.py", "a", "[IMP] a");
        var head = await GitAsync(_fork, "rev-parse", "HEAD");

        Assert.Equal(2, (await Tool.RunAsync(Script, ["--repo", _fork])).ExitCode);
        Assert.Equal(2, (await Tool.RunAsync(Script, ["--repo", _fork, "--ref", "upstream/main", "--bogus"])).ExitCode);

        var (notRepo, notRepoOutput) = await Tool.RunAsync(Script, ["--repo", _scratch.Path, "--ref", "main"]);
        Assert.Equal(1, notRepo);
        Assert.Contains("is not a git repository", notRepoOutput, StringComparison.Ordinal);

        var (badRef, badRefOutput) = await Tool.RunAsync(Script, ["--repo", _fork, "--ref", "--output=/tmp/x"]);
        Assert.Equal(1, badRef);
        Assert.Contains("invalid ref", badRefOutput, StringComparison.Ordinal);

        var (unknownRef, unknownOutput) = await Tool.RunAsync(Script, ["--repo", _fork, "--ref", "upstream/nope"]);
        Assert.Equal(1, unknownRef);
        Assert.Contains("upstream/nope is not a commit", unknownOutput, StringComparison.Ordinal);

        var (badBranch, badBranchOutput) = await CheckAsync("--sync-branch", "bad..name");
        Assert.Equal(1, badBranch);
        Assert.Contains("invalid branch name", badBranchOutput, StringComparison.Ordinal);

        var versionFile = _scratch.Write("VERSION", "LOOMWORKS_VERSION=1.0.0\nODOO_UPSTREAM_COMMIT=$(reboot)\n");
        var (badVersion, badVersionOutput) = await CheckAsync("--version-file", versionFile);
        Assert.Equal(1, badVersion);
        Assert.Contains("has no ODOO_UPSTREAM_COMMIT=<commit> line", badVersionOutput, StringComparison.Ordinal);

        File.WriteAllText(versionFile, $"ODOO_UPSTREAM_COMMIT={new string('a', 40)}\n");
        var (unknownBase, unknownBaseOutput) = await CheckAsync("--version-file", versionFile);
        Assert.Equal(1, unknownBase);
        Assert.Contains("is not a commit of", unknownBaseOutput, StringComparison.Ordinal);

        Assert.Equal(head, await GitAsync(_fork, "rev-parse", "HEAD"));
        Assert.Equal("main", (await GitAsync(_fork, "branch", "--show-current")).Trim());
    }

    /// <summary>An upstream repository with one commit, and a fork of it whose VERSION records that commit.</summary>
    private async Task CreateAsync()
    {
        Directory.CreateDirectory(_upstream);
        await GitAsync(_upstream, "init", "--quiet", "--initial-branch=main");
        File.WriteAllText(Path.Combine(_upstream, "shared.py"), "base\n");
        var baseCommit = await UpstreamCommitAsync("stock.py", "base\n", "[ADD] initial");
        await GitAsync(_scratch.Path, "clone", "--quiet", "--origin", "upstream", _upstream, _fork);
        File.WriteAllText(Path.Combine(_fork, "VERSION"),
            $"LOOMWORKS_VERSION=1.0.0\nODOO_VERSION=18.0\nODOO_UPSTREAM_COMMIT={baseCommit}\nRELEASE_DATE=2026-01-01\n");
        await GitAsync(_fork, "add", "VERSION");
        await GitAsync(_fork, "commit", "--quiet", "-m", "Loomworks VERSION");
    }

    private async Task<string> UpstreamCommitAsync(string file, string content, string subject, string body = "")
    {
        File.WriteAllText(Path.Combine(_upstream, file), content);
        await GitAsync(_upstream, "add", "-A");
        await GitAsync(_upstream, "commit", "--quiet", "-m", subject, "-m", body.Length > 0 ? body : "No details.");
        if (Directory.Exists(_fork))
        {
            await GitAsync(_fork, "fetch", "--quiet", "upstream");
        }
        return (await GitAsync(_upstream, "rev-parse", "HEAD")).Trim();
    }

    private Task<(int ExitCode, string Output)> CheckAsync(params string[] extra) =>
        Tool.RunAsync(Script, ["--repo", _fork, "--ref", "upstream/main", .. extra]);

    private static async Task<string> GitAsync(string directory, params string[] arguments)
    {
        var (exitCode, output) = await Tool.RunAsync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.invalid",
            "-c", "commit.gpgsign=false", .. arguments], workingDirectory: directory);
        Assert.True(exitCode == 0, $"git {string.Join(' ', arguments)} exited {exitCode}:\n{output}");
        return output;
    }
}
