using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Loomworks;

/// <summary>The libc calls Loomworks makes, in one place; each returns what libc returns (-1 with errno on failure).</summary>
internal static partial class Native
{
    /// <summary>kill(2): sends <paramref name="signal"/> to the process <paramref name="pid"/>.</summary>
    [LibraryImport("libc", EntryPoint = "kill")]
    internal static partial int Kill(int pid, int signal);

    /// <summary>setpriority(2): the nice value of a process (<paramref name="which"/> 0) or group.</summary>
    [LibraryImport("libc", EntryPoint = "setpriority")]
    internal static partial int SetPriority(int which, int who, int priority);

    /// <summary>sched_setaffinity(2): the CPUs a process may run on.</summary>
    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    internal static partial int SetAffinity(int pid, nuint size, ulong[] mask);

    /// <summary>fcntl(2) on a file descriptor with an integer argument (pipe sizes).</summary>
    [LibraryImport("libc", EntryPoint = "fcntl")]
    internal static partial int Fcntl(int fd, int command, int argument);

    /// <summary>fcntl(2) on a pipe, such as F_SETPIPE_SZ.</summary>
    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int Fcntl(SafePipeHandle pipe, int command, int argument);

    /// <summary>ioctl(2) on a pipe that reads an integer, such as FIONREAD (the bytes queued in it).</summary>
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(SafePipeHandle pipe, nuint request, ref int value);

    /// <summary>chown(2): gives a file to a user and group.</summary>
    [LibraryImport("libc", EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Chown(string path, int owner, int group);

    /// <summary>link(2): a second name for an existing file.</summary>
    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Link(string existing, string created);
}
