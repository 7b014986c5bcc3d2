using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>
/// Migrations of the management database. Each feature owns a range of versions and keeps its migrations in its own
/// Migrations folder, listed here: Tenancy 1 and 100–199, Snapshots 200–299, Backups 300–399, Operations 400–499,
/// Ai 500–599.
/// </summary>
public static class ManagementSchema
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        .. MigrationFiles.Load("Tenancy/Migrations"),
        .. MigrationFiles.Load("Snapshots/Migrations"),
        .. MigrationFiles.Load("Backups/Migrations"),
    ];
}
