using Loomworks.Postgres;

namespace Loomworks.Snapshots;

/// <summary>The snapshot feature's tables in the management database: snapshots, backup sets and restore jobs.</summary>
public static class SnapshotsSchema
{
    public static IReadOnlyList<Migration> Management { get; } = MigrationFiles.Load("Snapshots/Migrations");
}
