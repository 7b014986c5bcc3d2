using System.Globalization;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Snapshots;

/// <summary>Where the scratch copy goes and whether the disks (or memory) can take it; out-of-space failures named.</summary>
public sealed partial class TenantRestore
{
    /// <summary>
    /// Where the job's scratch copy goes, refusing when the disk cannot take it. Memory first: the copy is written and
    /// read once and thrown away, yet on disk its gigabytes (restored files, replay, dump) would share the disk queue
    /// with the live tenants' commits and slow them. In memory only the load into the live server touches the disk. The copy must leave
    /// half of the available memory to everything else.
    /// </summary>
    private async Task<string> ChooseScratchRootAsync(string database, BackupSet set, CancellationToken cancellationToken)
    {
        long size, walSinceBackup;
        await using (var command = admin.CreateCommand(
            "SELECT pg_database_size($1), pg_wal_lsn_diff(pg_current_wal_lsn(), $2)::bigint"))
        {
            command.Parameters.AddWithValue(database);
            command.Parameters.Add(new NpgsqlParameter { Value = set.StartLsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            (size, walSinceBackup) = (reader.GetInt64(0), Math.Max(0, reader.GetInt64(1)));
        }
        // Scratch: the copy, the WAL replayed since the backup, its dump, and the system databases. Live: the new
        // database and about as much WAL as it writes. On one file system both add up.
        var scratchNeeded = 2 * size + walSinceBackup + (64L << 20);
        var liveNeeded = 2 * size + (64L << 20);
        Directory.CreateDirectory(dataDir);
        if (MemoryRoot is { } memory && scratchNeeded <= MemoryAvailable() / 2
            && FreeBytes(Path.GetDirectoryName(memory)!) >= scratchNeeded)
        {
            CheckFree([(dataDir, liveNeeded)]);
            return memory;
        }
        Directory.CreateDirectory(ScratchRoot);
        var sameDisk = string.Equals(new DriveInfo(ScratchRoot).Name, new DriveInfo(dataDir).Name, StringComparison.Ordinal);
        CheckFree(sameDisk ? [(ScratchRoot, scratchNeeded + liveNeeded)] : [(ScratchRoot, scratchNeeded), (dataDir, liveNeeded)]);
        return ScratchRoot;
    }

    private void CheckFree(IEnumerable<(string Dir, long Needed)> checks)
    {
        foreach (var (dir, needed) in checks)
        {
            var free = FreeBytes(dir);
            if (free < needed)
            {
                throw new SnapshotException(SnapshotErrorKind.Unavailable,
                    $"not enough free disk space for the restore: about {needed >> 20} MB needed in {dir}, {free >> 20} MB free; " +
                    "nothing was changed");
            }
        }
    }

    private static long ReadMemoryAvailable()
    {
        // "MemAvailable:   23012345 kB"; no such line (not Linux): nothing is known to be free.
        var line = File.Exists("/proc/meminfo")
            ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal))
            : null;
        return line is not null
            && long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture, out var kb)
            ? kb << 10 : 0;
    }

    private bool AlmostFull(string dir)
    {
        try
        {
            return Directory.Exists(dir) && FreeBytes(dir) < 16L << 20;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Whether a failure's text says a disk filled up (PostgreSQL, pgBackRest and .NET all say ENOSPC's words).</summary>
    private static bool IsOutOfSpace(string text) =>
        text.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
        || text.Contains("could not extend file", StringComparison.OrdinalIgnoreCase)
        || text.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase);

    private string Describe(Exception e, string? scratch)
    {
        var root = scratch is null ? ScratchRoot : Path.GetDirectoryName(scratch)!;
        var advice = root == MemoryRoot
            ? "Free some memory or set loomworks_restore_in_memory to False"
            : "Free some space or point loomworks_restore_scratch_dir at a larger disk";
        var text = e switch
        {
            SnapshotException or PgBackRestException => e.Message,
            OperationCanceledException => "cancelled; rolled back, the tenant is unchanged",
            _ => $"{e.GetType().Name}: {e.Message}",
        };
        // pgBackRest reports a bare write error; a disk nearly full at the moment of failure names the cause.
        return IsOutOfSpace(text) || AlmostFull(root) || AlmostFull(dataDir)
            ? $"the disk ran out of space during the restore (no space left on device; scratch folder {root}, data in " +
              $"{dataDir}); rolled back, the tenant keeps its current data. {advice}. Detail: {Shorten(text, 400)}"
            : text;
    }
}
