using System.Diagnostics;
using System.Text;

namespace Loomworks.Tests.Infrastructure;

/// <summary>
/// The real <c>loomworks</c> executable, started as its own process: what a user runs, signals and kill -9 included.
/// </summary>
public sealed class LoomworksProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private LoomworksProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string Executable => Path.Combine(AppContext.BaseDirectory, "loomworks");

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static LoomworksProcess Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // The tests' own environment must not leak configuration into the process under test.
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("LOOMWORKS_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }
        return new LoomworksProcess(Process.Start(info)!);
    }

    /// <summary>Runs a command to its end and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        await using var process = Start(arguments, environment);
        var exitCode = await process.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(120));
        return (exitCode, process.Output);
    }

    /// <summary>Runs a command to its end and asserts its exit code and that its output names each of
    /// <paramref name="mentions"/>.</summary>
    public static async Task AssertExitAsync(int expectedExitCode, IEnumerable<string> arguments, params string[] mentions)
    {
        var (exitCode, output) = await RunAsync(arguments);
        Assert.Equal(expectedExitCode, exitCode);
        foreach (var mention in mentions)
        {
            Assert.Contains(mention, output);
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancellation.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"loomworks did not exit within {timeout}. Output:\n{Output}");
        }
        return _process.ExitCode;
    }

    /// <summary>Waits until the output contains <paramref name="text"/>, failing early if the process exits.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"loomworks exited ({_process.ExitCode}) before printing '{text}':\n{Output}");
            }
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"loomworks did not print '{text}' within {timeout}:\n{Output}");
            }
            await Task.Delay(50);
        }
    }

    public void Signal(int signal) => _ = kill(_process.Id, signal);

    public void KillHard() => Signal(9);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signal(15);
            try
            {
                await WaitForExitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
