using Loomworks.Postgres;

namespace Loomworks.Backups;

/// <summary>The database manager's tables in the management database: its jobs.</summary>
public static class BackupsSchema
{
    public static IReadOnlyList<Migration> Management { get; } = MigrationFiles.Load("Backups/Migrations");
}
