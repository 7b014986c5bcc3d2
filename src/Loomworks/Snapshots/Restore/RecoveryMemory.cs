namespace Loomworks.Snapshots;

/// <summary>
/// The memory a scratch copy's replay gets, sized from what the machine has available (/proc/meminfo's MemAvailable,
/// taken when the copy starts, after its files are restored): a quarter of it for shared buffers, so that replay keeps
/// the tenant's pages in them instead of evicting and reading them again, a sixteenth for maintenance work, and a WAL
/// decode buffer long enough for the prefetcher to look well ahead. Bounded both ways: a starved machine still gets
/// PostgreSQL's usual figures, and a large one does not hand a throwaway copy more than it can use.
/// </summary>
internal sealed record RecoveryMemory(long SharedBuffersMb, long MaintenanceWorkMemMb, long WalDecodeBufferKb)
{
    public static RecoveryMemory For(long availableBytes)
    {
        var availableMb = Math.Max(0, availableBytes) >> 20;
        return new RecoveryMemory(
            Math.Clamp(availableMb / 4, 128, 8192),
            Math.Clamp(availableMb / 16, 64, 1024),
            Math.Clamp((availableMb >> 10) * 1024, 512, 64 * 1024));
    }
}
