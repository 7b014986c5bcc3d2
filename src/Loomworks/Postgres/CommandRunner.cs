using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Loomworks.Postgres;

/// <summary>What a finished command printed and returned.</summary>
public sealed record CommandResult(int ExitCode, string Output, string Error)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>The error output, or the standard output when the error output is empty, trimmed for messages.</summary>
    public string Diagnostic => (Error.Trim().Length > 0 ? Error : Output).Trim();
}

/// <summary>Runs external programs (initdb, pg_ctl, pgbackrest, pg_dump), optionally as another OS user.</summary>
public static partial class CommandRunner
{
    /// <summary>PostgreSQL refuses to run as root, so as root its programs run as this user.</summary>
    public const string PostgresOsUser = "postgres";

    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>The user PostgreSQL's own programs run as: postgres when we are root, else ourselves.</summary>
    public static string? ServerUser => IsRoot ? PostgresOsUser : null;

    /// <summary>
    /// Wraps a command so it yields the CPU and disk to everything else: nice 19 and <paramref name="ioClass"/> (ionice's
    /// options), in a session of its own. Linux shares the CPU between sessions first (autogroup, on by default) and
    /// applies nice only inside one, so the session's group must be lowered too (<see cref="LowerSessionGroup"/>), which
    /// without a session of its own would lower the caller's. It runs on <see cref="LowPriorityCpus"/>, off the CPU kept
    /// for the tenants, and so do the processes it starts.
    /// </summary>
    public static (string Program, List<string> Arguments) LowPriority(string program, IEnumerable<string> arguments,
        params string[] ioClass) =>
        ("/usr/bin/setsid", ["-w", "/usr/bin/nice", "-n", "19", "/usr/bin/ionice", .. ioClass,
            .. LowPriorityCpus.List is { } cpus ? new[] { "/usr/bin/taskset", "-c", cpus } : [], program, .. arguments]);

    /// <summary>
    /// Gives the scheduling group of <paramref name="pid"/>'s session nice 19. PostgreSQL starts a session for every
    /// process it forks, so each backend is a group of its own, where nice alone changes nothing: a nice-19 restore
    /// backend took as large a share of the CPU as a tenant's. False when refused (the kernel takes one such change a
    /// tenth of a second from an unprivileged user) or the process is gone; true without autogroup, as nothing is needed.
    /// A process in our own session (runuser, which starts the low-priority command) is left alone: its group is ours,
    /// and lowering it would put this whole server, every tenant's requests included, behind the restore it runs.
    /// </summary>
    public static bool LowerSessionGroup(int pid) => SetSessionGroupNice(pid, 19);

    /// <summary>
    /// Gives the scheduling group of <paramref name="pid"/>'s session the nice value <paramref name="nice"/>, as
    /// <see cref="LowerSessionGroup"/> does (raising it back takes root or CAP_SYS_NICE).
    /// </summary>
    public static bool SetSessionGroupNice(int pid, int nice)
    {
        if (!File.Exists("/proc/self/autogroup"))
        {
            return true;
        }
        try
        {
            if (StatField(pid, StatSession) == OwnSession.Value)
            {
                return true;
            }
            File.WriteAllText($"/proc/{pid}/autogroup", nice.ToString(CultureInfo.InvariantCulture));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return false;
        }
    }

    /// <summary>Fields of /proc/PID/stat ("pid (name) state ppid pgrp session …"), counted from the state as 0.</summary>
    public const int StatParent = 1;

    /// <inheritdoc cref="StatParent"/>
    public const int StatSession = 3;

    /// <summary>Our own session, which does not change while we run.</summary>
    private static readonly Lazy<int> OwnSession = new(() => StatField(Environment.ProcessId, StatSession));

    /// <summary>A numeric field of /proc/PID/stat (<see cref="StatParent"/>, <see cref="StatSession"/>).</summary>
    public static int StatField(int pid, int field)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The name may hold spaces and parentheses: the fields are counted from its closing one.
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[field], CultureInfo.InvariantCulture);
    }

    public static ProcessStartInfo StartInfo(string program, IEnumerable<string> arguments, string? asUser = null)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        if (asUser is not null)
        {
            info.FileName = "runuser";
            info.ArgumentList.Add("-u");
            info.ArgumentList.Add(asUser);
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(program);
        }
        else
        {
            info.FileName = program;
        }
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // A working directory the target user can enter: runuser keeps ours, which may be /root.
        info.WorkingDirectory = "/";
        return info;
    }

    /// <summary>
    /// Starts <paramref name="program"/> with variables added to its environment; its error output is always
    /// redirected, its input and output when asked, and the caller reads them. A program that cannot be started
    /// throws <see cref="InvalidOperationException"/> naming it.
    /// </summary>
    public static Process Start(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment,
        bool redirectInput, bool redirectOutput, string? asUser = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var process = new Process { StartInfo = StartInfo(program, arguments, asUser) };
        process.StartInfo.RedirectStandardInput = redirectInput;
        process.StartInfo.RedirectStandardOutput = redirectOutput;
        foreach (var (name, value) in environment)
        {
            process.StartInfo.Environment[name] = value;
        }
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            process.Dispose();
            throw new InvalidOperationException($"cannot run {program}: {e.Message}", e);
        }
        return process;
    }

    public static Task<CommandResult> RunAsync(string program, IEnumerable<string> arguments, string? asUser = null,
        TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        RunAsync(program, arguments, asUser, timeout, new Dictionary<string, string>(), cancellationToken);

    /// <summary>
    /// As above, with variables added to the program's environment. <paramref name="input"/>, when given, writes the program's
    /// standard input, which is closed after it; if it fails, the program is ended and the result is a failure naming
    /// why, never a success on input cut short.
    /// </summary>
    public static async Task<CommandResult> RunAsync(string program, IEnumerable<string> arguments, string? asUser,
        TimeSpan? timeout, IReadOnlyDictionary<string, string> environment, CancellationToken cancellationToken,
        Func<Stream, CancellationToken, Task>? input = null)
    {
        using var process = Start(program, arguments, environment, redirectInput: input is not null, redirectOutput: true, asUser);
        var output = new StringBuilder();
        var error = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (error) { error.AppendLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout ?? TimeSpan.FromMinutes(5));
        string? inputFailure = null;
        try
        {
            if (input is not null)
            {
                inputFailure = await FeedAsync(process, input, timeoutSource.Token);
            }
            await process.WaitForExitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            throw new TimeoutException($"{program} did not finish within {timeout ?? TimeSpan.FromMinutes(5)}");
        }
        // WaitForExitAsync returns once the streams are drained as well.
        return inputFailure is null
            ? new CommandResult(process.ExitCode, output.ToString(), error.ToString())
            : new CommandResult(process.ExitCode == 0 ? -1 : process.ExitCode, output.ToString(),
                error + $"writing its input failed: {inputFailure}\n");
    }

    /// <summary>
    /// Writes the process's input and closes it; on failure ends the process (which would otherwise wait for the rest, or
    /// take what it got as all there is) and says why. A program that stops reading first is not a failure of the input:
    /// its own exit code and messages tell.
    /// </summary>
    private static async Task<string?> FeedAsync(Process process, Func<Stream, CancellationToken, Task> input,
        CancellationToken cancellationToken)
    {
        var stdin = process.StandardInput.BaseStream;
        if (stdin is System.IO.Pipes.PipeStream pipe)
        {
            // A pipe holds 64 KB; with 1 MB a writer can put large chunks in whenever they fit and stay ahead of a fast
            // reader (see QueuedBytes). 1 MB is what any user may ask for (fs.pipe-max-size); refused, it stays as it was.
            _ = Native.Fcntl(pipe.SafePipeHandle, FcntlSetPipeSize, InputPipeBytes);
        }
        try
        {
            await input(stdin, cancellationToken);
            await stdin.DisposeAsync();
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Ended before its input is closed: an end of input now would read as the end of the data.
            var stoppedReading = e is IOException && process.WaitForExit(TimeSpan.FromSeconds(1)) && process.ExitCode != 0;
            process.Kill(entireProcessTree: true);
            DisposeQuietly(stdin);
            return stoppedReading ? null : e.Message;
        }
    }

    /// <summary>What a program's input pipe holds when the kernel grants it (see <see cref="QueuedBytes"/>).</summary>
    public const int InputPipeBytes = 1 << 20;

    private const int FcntlSetPipeSize = 1031;
    private const int IoctlBytesQueued = 0x541B;

    /// <summary>
    /// The bytes written to a program's input pipe that it has not read yet; null when <paramref name="stdin"/> is not
    /// a pipe or the kernel does not say.
    /// </summary>
    public static int? QueuedBytes(Stream stdin)
    {
        if (stdin is not System.IO.Pipes.PipeStream pipe)
        {
            return null;
        }
        var queued = 0;
        return Native.Ioctl(pipe.SafePipeHandle, IoctlBytesQueued, ref queued) == 0 ? queued : null;
    }


    private static void DisposeQuietly(Stream stream)
    {
        try
        {
            stream.Dispose();
        }
        catch (IOException)
        {
            // a pipe whose reader is gone
        }
    }

    /// <summary>Hands a file or directory to the user PostgreSQL runs as (only needed, and only possible, as root).</summary>
    public static void GiveToServerUser(string path)
    {
        if (!IsRoot)
        {
            return;
        }
        var (uid, gid) = OsUsers.Lookup(PostgresOsUser)
            ?? throw new InvalidOperationException(
                $"running as root needs the '{PostgresOsUser}' OS user to run PostgreSQL; install the postgresql-common package " +
                $"or create it with 'adduser --system --group {PostgresOsUser}'");
        OsUsers.Chown(path, uid, gid);
    }
}
