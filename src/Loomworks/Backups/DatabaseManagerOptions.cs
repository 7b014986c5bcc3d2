using Loomworks.Configuration;

namespace Loomworks.Backups;

/// <summary>Limits and places of the database manager, read from loomworks.conf.</summary>
public sealed class DatabaseManagerOptions
{
    public required string DataDir { get; init; }
    public string ManagementDatabase { get; init; } = "loomworks_mgmt";

    /// <summary>Where uploads are spooled before a restore: on data_dir's disk, not a small /tmp.</summary>
    public string TempDir => Path.Combine(DataDir, "tmp");

    /// <summary>The most bytes a backup may expand to (upload size and unpacked size alike).</summary>
    public long MaxRestoreBytes { get; init; } = 100L * 1024 * 1024 * 1024;

    /// <summary>Restore uploads spooled at once (web form and db.restore alike); more are refused as busy.</summary>
    public int MaxConcurrentUploads { get; init; } = 2;

    /// <summary>The most bytes all spooled uploads together may hold on data_dir's disk.</summary>
    public long MaxSpoolBytes { get; init; } = 200L * 1024 * 1024 * 1024;

    /// <summary>The highest compression ratio an entry of more than 1 MB may have; SQL text compresses about 10×.</summary>
    public int MaxCompressionRatio { get; init; } = 200;

    /// <summary>
    /// The newest tenant schema this binary understands; a backup of a newer one is refused. Set by the host from the
    /// tenant migrations it ships.
    /// </summary>
    public int SupportedSchemaVersion { get; init; } = DefaultSupportedSchemaVersion;

    public const int DefaultSupportedSchemaVersion = 999;

    /// <summary>
    /// pg_restore's --jobs for custom-format dumps: tables and indexes load side by side. More than the cores only
    /// queues work, and the cap of four leaves a bigger server's other cores to the tenants it is serving.
    /// </summary>
    public int RestoreJobs { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>Whether the database manager is on at all (Odoo's list_db).</summary>
    public bool ListDatabases { get; init; } = true;

    /// <summary>Unreferenced files are kept this long, as snapshots within their retention may still point at them.</summary>
    public TimeSpan FileRetention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Where PostgreSQL's programs are (pg_bin_dir); null: found through pg_config or the usual places.</summary>
    public string? PgBinDir { get; init; }

    /// <summary>In-process test hook called after each persisted step with "kind:step".</summary>
    internal Action<string>? StepHook { get; init; }

    /// <summary>Options from the configuration; dumps newer than <paramref name="schema"/>'s latest migration are refused.</summary>
    public static DatabaseManagerOptions From(LoomworksSettings settings, Tenancy.ITenantDatabaseSetup schema) => new()
    {
        DataDir = settings.DataDir,
        ManagementDatabase = settings.ManagementDatabase,
        MaxRestoreBytes = settings.GetInt(ConfigKeys.RestoreMaxSizeMb) * 1024L * 1024,
        MaxConcurrentUploads = settings.GetInt(ConfigKeys.RestoreMaxUploads),
        MaxSpoolBytes = settings.GetInt(ConfigKeys.RestoreSpoolMaxMb) * 1024L * 1024,
        SupportedSchemaVersion = schema.Migrations.Count > 0 ? schema.Migrations.Max(m => m.Version) : DefaultSupportedSchemaVersion,
        ListDatabases = settings.GetBool(ConfigKeys.ListDb),
        FileRetention = TimeSpan.FromDays(settings.GetInt(ConfigKeys.SnapshotRetentionDays)),
        PgBinDir = settings.Get(ConfigKeys.PgBinDir),
    };
}
