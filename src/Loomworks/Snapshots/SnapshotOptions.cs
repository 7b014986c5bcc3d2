using Loomworks.Configuration;
using Loomworks.Postgres;

namespace Loomworks.Snapshots;

/// <summary>The snapshot feature's settings, bound once from loomworks.conf for the server it backs up.</summary>
public sealed class SnapshotOptions
{
    /// <summary>Where pgBackRest's files live for this server and how long backups are kept.</summary>
    public required PgBackRestOptions BackRest { get; init; }

    /// <summary>Why snapshots are off before anything was tried (a malformed key, naming it); null when the keys are fine.</summary>
    public string? Problem { get; init; }

    /// <summary>Whether Loomworks runs the PostgreSQL server itself (its set-up is then Loomworks' own).</summary>
    public bool Embedded { get; init; }

    public required PostgresEndpoint Endpoint { get; init; }

    /// <summary>PostgreSQL's programs for the scratch copies of restores, found on first use.</summary>
    public required Lazy<PostgresBinaries> Binaries { get; init; }

    public required string DataDir { get; init; }

    /// <summary>loomworks_restore_scratch_dir, by default data_dir/restore.</summary>
    public required string ScratchRoot { get; init; }

    /// <summary>The in-memory scratch folder when loomworks_restore_in_memory is on, else null.</summary>
    public string? MemoryRoot { get; init; }

    public int KeepPreRestoreHours { get; init; }

    /// <summary>loomworks_restore_paced_mb_per_s in bytes; 0: never paced.</summary>
    public long PacedBytesPerSecond { get; init; }

    public int ArchiveTimeoutSeconds { get; init; }

    /// <summary>Seconds between automatic snapshots of each active tenant; 0: none.</summary>
    public int AutoSnapshotIntervalSeconds { get; init; }

    public int BackupFullIntervalDays { get; init; }

    public int BackupDiffIntervalHours { get; init; }

    /// <summary>The binder: the snapshot keys of <paramref name="settings"/> for <paramref name="server"/>.</summary>
    public static SnapshotOptions From(LoomworksSettings settings, PostgresServer server)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(server);
        var cluster = server.Embedded;
        PgBackRestOptions backRest;
        string? problem = null;
        if (cluster is not null)
        {
            backRest = new PgBackRestOptions(settings.DataDir, settings.BackupRepository, cluster.PgData, cluster.SocketDir,
                server.Endpoint.Port, settings.GetInt(ConfigKeys.SnapshotRetentionDays));
        }
        else
        {
            // One stanza per PostgreSQL server: the operator's server gets its own set-up, or snapshots stay off and say why.
            (backRest, problem) = ExternalServer.Options(settings, server.Endpoint);
        }
        var binDir = settings.Get(ConfigKeys.PgBinDir);
        return new SnapshotOptions
        {
            BackRest = backRest,
            Problem = problem,
            Embedded = cluster is not null,
            Endpoint = server.Endpoint,
            Binaries = new Lazy<PostgresBinaries>(() => cluster?.Binaries ?? PostgresBinaries.Locate(binDir)),
            DataDir = settings.DataDir,
            ScratchRoot = settings.Get(ConfigKeys.RestoreScratchDir) is { Length: > 0 } scratch
                ? Path.GetFullPath(scratch)
                : Path.Combine(settings.DataDir, "restore"),
            MemoryRoot = settings.GetBool(ConfigKeys.RestoreInMemory) ? TenantRestore.MemoryRootFor(settings.DataDir) : null,
            KeepPreRestoreHours = settings.GetInt(ConfigKeys.KeepPreRestoreHours),
            PacedBytesPerSecond = settings.GetInt(ConfigKeys.RestorePacedMbPerSecond) * (1L << 20),
            ArchiveTimeoutSeconds = settings.GetInt(ConfigKeys.ArchiveTimeout),
            AutoSnapshotIntervalSeconds = settings.GetInt(ConfigKeys.AutoSnapshotInterval),
            BackupFullIntervalDays = settings.GetInt(ConfigKeys.BackupFullIntervalDays),
            BackupDiffIntervalHours = settings.GetInt(ConfigKeys.BackupDiffIntervalHours),
        };
    }
}
