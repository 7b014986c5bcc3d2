using Loomworks.Backups;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Loomworks.Tenancy;

namespace Loomworks.Server.Hosting;

/// <summary>The management database's migrations, collected from the features that own its tables.</summary>
public static class ManagementMigrations
{
    public static IReadOnlyList<Migration> All { get; } = ManagementSchema.Of(SnapshotsSchema.Management, BackupsSchema.Management);
}
