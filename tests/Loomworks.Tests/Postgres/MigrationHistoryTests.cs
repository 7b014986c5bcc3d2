using System.Security.Cryptography;
using System.Text;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;

namespace Loomworks.Tests.Postgres;

/// <summary>
/// The migrations as released. A new database replays the very SQL every existing database ran, so the text of a
/// released migration never changes, not even by a byte: these are the SHA-256 hashes of its UTF-8 bytes. A new
/// migration appends its line to its database's list.
/// </summary>
public sealed class MigrationHistoryTests
{
    private sealed record Released(int Version, string Name, string Sha256);

    private static readonly Released[] ManagementHistory =
    [
        new(1, "settings",
            "5da2d673e2c2d3214fe3270502a0f05a380a67e53b0cf936c8a3e2980c151c16"),
        new(100, "tenants",
            "12d4a83068ea7b3fdb65d5c9bd12b2db533e16cb51dd650f3a01a7532da1a284"),
        new(101, "tenant jobs",
            "73070745c7007f70e501c73b4a751edd4c1ced8526f6945c01cc70ac71e20cb9"),
        new(102, "tenant audit",
            "66a03d3eb452de63cd4ab218d857a7f94c05eb2e1f7164f0a9330ff07d1e5b3b"),
        new(103, "tenant ai usage",
            "184216af791539ce7aece7e9fdb7046457f651948d31fe963fd6974f5b3beeeb"),
        new(200, "snapshots",
            "5672e7d849469a886ca99aff9b8789b978e6ae2474ba6fe0533f25280b50de87"),
        new(201, "restore jobs",
            "1d391719b0586feb1722d6aa52f48e60add054519686a7f3df513df480afd97a"),
        new(300, "database manager jobs",
            "6368bea5699239939c2b44adb532e1683d9a144228f5d78882a9365e94e09bbb"),
    ];

    private static readonly Released[] TenantHistory =
    [
        new(1000, "erp core tables",
            "bfdb1f05a686de7c7fb526ba9ff591a23ca95303990bcd7f35387d502c00e700"),
        new(1001, "countries",
            "5bedab3bf340c76a9470324b45eeaacecbe51cfcbbc265b74211b74c21ec5c2f"),
        new(1002, "company, groups, access rights, OdooBot and the admin",
            "55bdf7534838d9b304226f3b6989d95a3d3aa191148f4cdd8dd85f05a98721f1"),
        new(1050, "security stamp for cached credential checks and access rights",
            "ee89417553a76b89bf7e1cbbedb341739a6099bb8260cc9254ac39aa30b5832b"),
        new(1100, "web sessions",
            "e6e8939a5320382ba03f352265de87bed69f5f9447041e2ea5e3eaffcafb8c30"),
        new(1210, "ir.model and ir.model.fields, filled from the model registry when first read",
            "05e461c402d6d224817f644dc56cd431c9edc10fc25cec070dd645a81b42bd36"),
        new(2000, "operation log and change capture",
            "8dc957325a02dd88900327b461b17ae253645282ed0d5865f9ec2e5559ddc3c3"),
        new(2001, "change capture on the ERP core's tables",
            "3b9381877821200df836a032ecbb81b948878d1fb6e523102e8889f1d7987fc0"),
        new(2002, "the operation log as the model loomworks.ai.operation.log",
            "893e75633a2ca5194bd00e854918ed4e465d512f2320ca6bf6bfd9a33288302d"),
        new(2003, "statement-level capture, completion at commit, undo in one statement",
            "baf3e9533d0b1f0e4c879fc8f536bc900e666cb49d8597510fb3b8aba68ca2d2"),
        new(2004, "statement-level change capture on the ERP core's tables",
            "e7237cd354cd94e2359b94aa49b06828dde9cf6d8b719459c9720473d713b94b"),
        new(2005, "the log row written once at commit, change rows tagged without a round trip",
            "d757e2d4d038c6eaefc2e154239afb5964839eb2473f7ba6973c66d25fa49a75"),
        new(2006, "what an operation changed read from its change rows",
            "6e27eb4fd3fd9ae82ea974b70ed170c6466bd6950803de6f9a8121ac42b8b59f"),
        new(2007, "the operation log model reads what an operation changed from its change rows",
            "16a2372464464fae6d6c6af4c99e718d8b5a57494678766dee487fd0203e74d0"),
        new(2008, "cheaper change capture: one plain statement per captured statement, two indexes per change row",
            "7ef9dc794a3142ba9c2af83d187d0b08acbcd8a2c48d568d439ebf347f19126e"),
        new(2009, "change rows found by a bigint hash of their row, each row turned into jsonb once, an update captured in one statement",
            "e57b24615cccd7a7b14ded3306913e3042a30730388f69a3bf74f2ead162e311"),
        new(2010, "a capture function per event for tables keyed by one column, key moves captured by a row trigger",
            "09d99d0cc902dc1c9b7f0c16207a3a395248a134d2358cf03b83874e701b5712"),
        new(2011, "no index on the change time",
            "473021cb85583a99020b4166d1f1c81ecdadc1c8e7db04753e808c2f2a385c47"),
        new(2012, "foreign keys deferrable, and deferred while an undo applies its inverse",
            "43e2999fe70d1ce011f8834e5a6fb5dc759f84d47d66467148cffca7b2df13d5"),
        new(2013, "change capture on the access rights a group's deletion removes",
            "97a265d5453177363426a172098b43c497141afcafc82f0f26049378ad2fcf19"),
        new(2014, "the operation log found by user",
            "1f880bd0abba7be224bffc2982596813f7ddaf07d15978c237e68c71c55463a6"),
    ];

    /// <summary>The operation log's own migrations, which need no ERP table; the others capture the ERP core's tables.</summary>
    private static readonly int[] OperationLogVersions = [2000, 2003, 2005, 2006, 2008, 2009, 2010, 2011, 2012, 2014];

    [Fact]
    public void The_management_database_gets_the_released_migrations_byte_for_byte() =>
        AssertReleased(ManagementHistory, ManagementMigrations.All);

    [Fact]
    public void A_tenant_database_gets_the_released_migrations_byte_for_byte() =>
        AssertReleased(TenantHistory, ErpTenantSetup.All);

    [Fact]
    public void The_erp_core_and_the_operation_log_each_yield_their_own_released_migrations()
    {
        AssertReleased(TenantHistory.Where(m => m.Version < 2000), TenantSchema.All);
        AssertReleased(TenantHistory.Where(m => OperationLogVersions.Contains(m.Version)), OperationsSchema.All);
    }

    [Fact]
    public void Each_feature_releases_its_migrations_in_version_order()
    {
        // A migration numbered below one already released would run on existing databases after that later one.
        foreach (var history in new[] { ManagementHistory, TenantHistory })
        {
            foreach (var range in MigrationFilesTests.Ranges)
            {
                var versions = history.Select(m => m.Version).Where(v => v >= range.From && v <= range.To).ToList();
                Assert.Equal(versions.Order(), versions);
            }
        }
    }

    private static void AssertReleased(IEnumerable<Released> released, IEnumerable<Migration> migrations) =>
        Assert.Equal(released, migrations.OrderBy(m => m.Version)
            .Select(m => new Released(m.Version, m.Name, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(m.Sql))))));
}
