using System.Globalization;

namespace Loomworks.Postgres;

/// <summary>
/// The CPUs that low-priority work (a restore's scratch copy, dump and load) may use: every CPU this process may use but
/// the first, which stays free for the tenants. Priorities alone do not protect them: on a kernel without preemption in
/// system calls (preempt=none, as server and cloud kernels are built) a tenant's query that wakes up waits for the CPU
/// it lands on until the nice-19 process there leaves its system call: writing a dump, copying rows, freeing a scratch
/// copy's memory. The restore waits on memory and disk more than on the CPU, so one CPU fewer costs it little. With a
/// single CPU there is nothing to keep free and nothing is restricted.
/// </summary>
public static partial class LowPriorityCpus
{
    /// <summary>Enough for 1024 CPUs, the kernel's cpu_set_t.</summary>
    private const int MaskWords = 16;

    /// <summary>Every CPU this process may use: where restore work runs while no tenant needs the CPUs.</summary>
    public static IReadOnlyList<int> All { get; } = Allowed();

    /// <summary>The CPUs, or none when this process may use only one.</summary>
    public static IReadOnlyList<int> Cpus { get; } = Spare(All);

    /// <summary>The CPUs as taskset's list ("1,2,3"), or null when nothing is restricted.</summary>
    public static string? List { get; } = Cpus.Count == 0 ? null : string.Join(',', Cpus);

    /// <summary>All CPUs in <paramref name="allowed"/> but the first; none when it holds fewer than two.</summary>
    public static IReadOnlyList<int> Spare(IReadOnlyList<int> allowed) => allowed.Count < 2 ? [] : [.. allowed.Order().Skip(1)];

    /// <summary>
    /// Parses a kernel CPU list ("0-3,8,10-11", as in /proc/self/status); a list it cannot read gives no CPUs, so
    /// nothing is restricted rather than the wrong CPUs.
    /// </summary>
    public static IReadOnlyList<int> Parse(string list)
    {
        var cpus = new SortedSet<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var bounds = part.Split('-');
            if (bounds.Length > 2
                || !int.TryParse(bounds[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
                || !int.TryParse(bounds[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
                || last < first || last >= MaskWords * 64)
            {
                return [];
            }
            for (var cpu = first; cpu <= last; cpu++)
            {
                cpus.Add(cpu);
            }
        }
        return [.. cpus];
    }

    /// <summary>
    /// Keeps a running process (a live backend PostgreSQL forked for the load) to <see cref="Cpus"/>; processes started
    /// through <see cref="CommandRunner.LowPriority"/> are kept there from the start, with their children. False when
    /// refused or gone.
    /// </summary>
    public static bool Restrict(int pid) => Cpus.Count == 0 || SetAffinity(pid, Cpus);

    /// <summary>Lets a process kept to <see cref="Cpus"/> run on every CPU again (<see cref="All"/>); false when refused or gone.</summary>
    public static bool Widen(int pid) => Cpus.Count == 0 || SetAffinity(pid, All);

    private static bool SetAffinity(int pid, IReadOnlyList<int> cpus)
    {
        var mask = new ulong[MaskWords];
        foreach (var cpu in cpus)
        {
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }
        return Native.SetAffinity(pid, (nuint)(mask.Length * sizeof(ulong)), mask) == 0;
    }

    private static IReadOnlyList<int> Allowed()
    {
        var line = File.Exists("/proc/self/status")
            ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            : null;
        return line is null ? [] : Parse(line["Cpus_allowed_list:".Length..]);
    }
}
