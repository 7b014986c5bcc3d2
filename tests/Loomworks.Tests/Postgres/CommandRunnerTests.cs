using System.Text;
using Loomworks.Postgres;

namespace Loomworks.Tests.Postgres;

/// <summary>Programs run with their standard input written by us: all of it, or a failure, never half taken for all.</summary>
public sealed class CommandRunnerTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly Dictionary<string, string> NoEnvironment = [];

    [Fact]
    public async Task A_program_reads_all_the_input_written_and_then_its_end()
    {
        var text = string.Concat(Enumerable.Range(0, 20_000).Select(i => $"line {i}\n"));
        var result = await CommandRunner.RunAsync("/usr/bin/wc", ["-c"], null, TimeSpan.FromSeconds(30), NoEnvironment, None,
            (stdin, token) => stdin.WriteAsync(Encoding.UTF8.GetBytes(text), token).AsTask());
        Assert.True(result.Succeeded, result.Diagnostic);
        Assert.Equal(Encoding.UTF8.GetByteCount(text).ToString(System.Globalization.CultureInfo.InvariantCulture), result.Output.Trim());
    }

    [Fact]
    public async Task The_input_pipe_holds_a_megabyte_and_says_how_much_is_not_read_yet()
    {
        int? queued = null;
        var result = await CommandRunner.RunAsync("/bin/sleep", ["0.5"], null, TimeSpan.FromSeconds(30), NoEnvironment, None,
            async (stdin, token) =>
            {
                // More than the 64 KB a pipe holds by default; sleep reads none of it.
                await stdin.WriteAsync(new byte[900_000], token);
                queued = CommandRunner.QueuedBytes(stdin);
            });
        Assert.True(result.Succeeded, result.Diagnostic);
        Assert.Equal(900_000, queued);
        Assert.Null(CommandRunner.QueuedBytes(new MemoryStream()));
    }

    [Fact]
    public async Task Input_that_fails_midway_ends_the_program_and_the_result_says_why()
    {
        var result = await CommandRunner.RunAsync("/usr/bin/wc", ["-c"], null, TimeSpan.FromSeconds(30), NoEnvironment, None,
            async (stdin, token) =>
            {
                await stdin.WriteAsync(new byte[1000], token);
                await stdin.FlushAsync(token);
                throw new IOException("the data file went away");
            });
        Assert.False(result.Succeeded);
        Assert.Contains("writing its input failed: the data file went away", result.Diagnostic, StringComparison.Ordinal);
        // Ended before its input was closed: it never counted the 1000 bytes as all there was.
        Assert.DoesNotContain("1000", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_program_that_fails_before_reading_everything_reports_its_own_error()
    {
        var result = await CommandRunner.RunAsync("/bin/sh", ["-c", "echo 'no such table' >&2; exit 3"], null, TimeSpan.FromSeconds(30),
            NoEnvironment, None, async (stdin, token) =>
            {
                for (var i = 0; i < 1000; i++)
                {
                    await stdin.WriteAsync(new byte[65536], token);
                }
            });
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("no such table", result.Diagnostic, StringComparison.Ordinal);
    }
}
