using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;

namespace Loomworks.Tests.Postgres;

/// <summary>The embedded migration files: each one loaded by its database, numbered in its feature's range, well formed.</summary>
public sealed class MigrationFilesTests
{
    /// <summary>The versions each feature owns, as <see cref="ManagementSchema"/> and the tenant schemas state them.</summary>
    internal static readonly (string Feature, int From, int To)[] Ranges =
    [
        ("Tenancy", 1, 1), ("Tenancy", 100, 199), ("Snapshots", 200, 299), ("Backups", 300, 399), ("Operations", 400, 499),
        ("Ai", 500, 599), ("Records", 1000, 1999), ("Operations", 2000, 2099),
    ];

    [Fact]
    public void Every_migration_file_is_loaded_by_the_management_or_the_tenant_database_and_nothing_else_is()
    {
        var files = MigrationFiles.Paths().Select(Path.GetDirectoryName).Distinct().SelectMany(f => MigrationFiles.Load(f!));
        var loaded = ManagementMigrations.All.Concat(ErpTenantSetup.All);
        Assert.Equal(files.OrderBy(m => m.Version).ThenBy(m => m.Name, StringComparer.Ordinal),
            loaded.OrderBy(m => m.Version).ThenBy(m => m.Name, StringComparer.Ordinal));
    }

    [Fact]
    public void A_version_is_used_once_per_database()
    {
        Assert.Distinct(ManagementMigrations.All.Select(m => m.Version));
        Assert.Distinct(ErpTenantSetup.All.Select(m => m.Version));
    }

    [Fact]
    public void Each_feature_numbers_its_migration_files_within_its_own_range()
    {
        var paths = MigrationFiles.Paths();
        Assert.NotEmpty(paths);
        foreach (var path in paths)
        {
            var feature = path[..path.IndexOf('/', StringComparison.Ordinal)];
            var version = int.Parse(Path.GetFileName(path)[..4], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(Ranges.Any(r => r.Feature == feature && version >= r.From && version <= r.To),
                $"{path}: version {version} is outside {feature}'s range");
        }
    }

    [Fact]
    public void A_file_is_a_header_an_empty_line_and_the_sql_which_excludes_the_final_newline_only()
    {
        Assert.Equal(new Migration(7, "seven: and more", "SELECT 1;\n\nSELECT 2;\n"),
            MigrationFiles.Parse("Feature/Migrations/0007_seven.sql",
                "-- migration 7: seven: and more\n-- why\n\nSELECT 1;\n\nSELECT 2;\n\n"));
        Assert.Equal(new Migration(2012, "x", "-- a comment of the SQL\nSELECT 1"),
            MigrationFiles.Parse("Feature/Migrations/2012_x.sql", "-- migration 2012: x\n\n-- a comment of the SQL\nSELECT 1\n"));
    }

    [Theory]
    [InlineData("0001_a.sql", "-- migration 1: a\r\n\r\nSELECT 1;\r\n")]
    [InlineData("0001_a.sql", "-- migration 2: a\n\nSELECT 1;\n")]
    [InlineData("0001_a.sql", "-- migration 1:\n\nSELECT 1;\n")]
    [InlineData("1_a.sql", "-- migration 1: a\n\nSELECT 1;\n")]
    [InlineData("0001_A.sql", "-- migration 1: a\n\nSELECT 1;\n")]
    [InlineData("0001_a.sql", "-- migration 1: a\nSELECT 1;\n")]
    [InlineData("0001_a.sql", "-- migration 1: a\n\nSELECT 1;")]
    [InlineData("0001_a.sql", "-- migration 1: a\nnot a comment\n\nSELECT 1;\n")]
    [InlineData("0001_a.sql", "-- migration 1: a\n\n\n")]
    [InlineData("0001_a.sql", "SELECT 1;\n\nSELECT 2;\n")]
    public void A_malformed_file_is_refused_by_name(string file, string text)
    {
        var refusal = Assert.Throws<InvalidOperationException>(() => MigrationFiles.Parse("Feature/Migrations/" + file, text));
        Assert.Contains("Feature/Migrations/" + file, refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_folder_without_migration_files_is_refused()
    {
        Assert.Throws<InvalidOperationException>(() => MigrationFiles.Load("Operations/Migration"));
    }
}
