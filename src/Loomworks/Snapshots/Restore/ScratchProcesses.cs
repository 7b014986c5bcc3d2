using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loomworks.Postgres;

namespace Loomworks.Snapshots;

/// <summary>The processes that work on a scratch folder: found by their command line, lowered or raised in priority, killed.</summary>
internal static class ScratchProcesses
{
    /// <summary>
    /// Ends what still works on a scratch folder once its PostgreSQL is gone: the archive-get worker that fetches WAL
    /// ahead detaches from the copy and may still be filling the spool. Waits (at most 5 s) until they are gone: a killed
    /// process still runs until the kernel has torn it down, and a caller that saw it return takes the folder as free.
    /// </summary>
    internal static void KillHelpersOf(string scratch)
    {
        var watch = Stopwatch.StartNew();
        while (Processes(scratch).Where(p => p.MentionsScratch).Select(p => p.Pid).ToList() is { Count: > 0 } helpers
            && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            foreach (var pid in helpers)
            {
                _ = Native.Kill(pid, 9);
            }
            Thread.Sleep(10);
        }
    }

    /// <summary>
    /// Every process with its parent, and whether it works on the scratch folder: found by the folder in its command
    /// line, which is unique to the job (the copy's postmaster, pgBackRest and its detached archive-get worker, pg_dump,
    /// the loaders). Processes that end meanwhile are left out.
    /// </summary>
    internal static IEnumerable<(int Pid, int Parent, bool MentionsScratch)> Processes(string scratch)
    {
        var marker = Encoding.UTF8.GetBytes(Path.TrimEndingDirectorySeparator(scratch) + "/");
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId)
            {
                continue;
            }
            (int, int, bool)? process = null;
            try
            {
                var parent = CommandRunner.StatField(pid, CommandRunner.StatParent);
                process = (pid, parent, File.ReadAllBytes(Path.Combine(dir, "cmdline")).AsSpan().IndexOf(marker) >= 0);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // gone meanwhile
            }
            if (process is { } found)
            {
                yield return found;
            }
        }
    }

    /// <summary>
    /// Every process working on the scratch copy: those naming the folder (the copy's postmaster, pgBackRest and its
    /// detached archive-get worker, pg_dump, pg_restore, psql) and their children, as the copy's own processes (replay,
    /// the backends serving pg_dump) and the workers of pg_dump and pg_restore name no folder.
    /// </summary>
    internal static IEnumerable<int> Working(string scratch)
    {
        var processes = Processes(scratch).ToList();
        var working = processes.Where(p => p.MentionsScratch).Select(p => p.Pid).ToHashSet();
        return processes.Where(p => working.Contains(p.Pid) || working.Contains(p.Parent)).Select(p => p.Pid);
    }

    /// <summary>
    /// Nice 19 for the process and its scheduling group, on the low-priority CPUs; false when the group's change was refused
    /// (retried later).
    /// </summary>
    internal static bool Lower(int pid)
    {
        if (!CommandRunner.LowerSessionGroup(pid))
        {
            return false;
        }
        _ = Native.SetPriority(0, pid, 19);
        _ = LowPriorityCpus.Restrict(pid);
        return true;
    }

    /// <summary>
    /// Nice 0 for the process and its scheduling group, on every CPU this process may use; false when refused (lowering a
    /// nice value takes root or CAP_SYS_NICE: without, the restore stays low, as it always was).
    /// </summary>
    internal static bool Raise(int pid)
    {
        if (!CommandRunner.SetSessionGroupNice(pid, 0) || Native.SetPriority(0, pid, 0) != 0)
        {
            return false;
        }
        _ = LowPriorityCpus.Widen(pid);
        return true;
    }
}
