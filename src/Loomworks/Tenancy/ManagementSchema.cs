using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>
/// Migrations of the management database. Each feature owns a range of versions, keeps its migrations in its own
/// Migrations folder and declares them itself (Tenancy 1 and 100–199 here, Snapshots 200–299, Backups 300–399,
/// Operations 400–499, Ai 500–599); the host collects them with <see cref="Of"/>.
/// </summary>
public static class ManagementSchema
{
    /// <summary>Tenancy's own tables: settings, tenants, their jobs, audit and AI usage.</summary>
    public static IReadOnlyList<Migration> Tenancy { get; } = MigrationFiles.Load("Tenancy/Migrations");

    /// <summary>Tenancy's migrations and those of <paramref name="features"/>, in version order; a version used twice is refused.</summary>
    public static IReadOnlyList<Migration> Of(params IEnumerable<Migration>[] features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var all = Tenancy.Concat(features.SelectMany(f => f)).OrderBy(m => m.Version).ToList();
        var duplicate = all.GroupBy(m => m.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException($"two management migrations have version {duplicate.Key}");
        }
        return all;
    }
}
