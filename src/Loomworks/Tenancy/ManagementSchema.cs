using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>
/// Migrations of the management database. Each feature owns a range of versions and adds its migrations to its own
/// list here: Tenancy 100–199, Snapshots 200–299, Backups 300–399, Operations 400–499, Ai 500–599.
/// </summary>
public static class ManagementSchema
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(1, "settings", """
            CREATE TABLE loomworks_settings (
                key text PRIMARY KEY,
                value text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())
            """),
    ];
}
