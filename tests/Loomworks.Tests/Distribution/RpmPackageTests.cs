using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

[Collection(PackageGroup.Name)]
public sealed class RpmPackageTests(PackageFixture packages)
{
    [Fact]
    public async Task Header_names_the_version_and_requirements()
    {
        var info = await Tool.RunOkAsync("rpm", "-qpi", packages.RpmPath);
        Assert.Matches(@"Name\s*: loomworks-erp\n", info);
        Assert.Matches($@"Version\s*: {System.Text.RegularExpressions.Regex.Escape(PackageFixture.Version)}\n", info);
        Assert.Matches(@"Release\s*: 1\n", info);
        Assert.Matches(@"Architecture\s*: x86_64\n", info);
        Assert.Matches(@"License\s*: LGPL-3.0-only\n", info);
        var requires = await Tool.RunOkAsync("rpm", "-qp", "--requires", packages.RpmPath);
        Assert.Contains("pgbackrest", requires, StringComparison.Ordinal);
        Assert.Contains("postgresql >= 15", requires, StringComparison.Ordinal);
        // AutoReqProv is off: a self-contained program must not require the libraries it carries.
        Assert.DoesNotContain("libcoreclr", requires, StringComparison.Ordinal);
        var config = await Tool.RunOkAsync("rpm", "-qp", "--configfiles", packages.RpmPath);
        Assert.Equal("/etc/loomworks/loomworks.conf", config.Trim());
    }

    [Fact]
    public async Task Lists_the_documented_tree_and_hand_written_scriptlets()
    {
        var files = (await Tool.RunOkAsync("rpm", "-qpl", packages.RpmPath)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (var path in new[] { "/usr/bin/loomworks", "/usr/lib/loomworks/loomworks", "/usr/lib/loomworks/libcoreclr.so",
                     "/etc/loomworks/loomworks.conf", "/usr/lib/systemd/system/loomworks.service", "/var/lib/loomworks",
                     "/var/log/loomworks", "/usr/share/man/man1/loomworks.1.gz" })
        {
            Assert.Contains(path, files);
        }
        // Debian's rpm maps %{_sharedstatedir} to /usr/com: the paths are spelled out and must stay that way.
        Assert.DoesNotContain(files, f => f.StartsWith("/usr/com", StringComparison.Ordinal)
            || f.StartsWith("/opt", StringComparison.Ordinal));
        var modes = await Tool.RunOkAsync("rpm", "-qp", "--queryformat",
            "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", packages.RpmPath);
        Tool.AssertContainsAll(modes,
            "drwxr-x--- loomworks:loomworks /var/lib/loomworks",
            "drwxr-x--- loomworks:loomworks /var/lib/loomworks.state",
            "-rw-r----- root:loomworks /etc/loomworks/loomworks.conf",
            "-rwxr-xr-x root:root /usr/lib/loomworks/loomworks");

        var scripts = await Tool.RunOkAsync("rpm", "-qp", "--scripts", packages.RpmPath);
        Tool.AssertContainsAll(scripts,
            "preinstall scriptlet",
            "useradd -r -g loomworks -d /var/lib/loomworks -s /sbin/nologin",
            "systemctl --no-reload disable --now loomworks.service",
            "systemctl try-restart loomworks.service");
    }

    /// <summary>
    /// The %postun scriptlet as packed, run by sh with rpm's argument ($1 = packages left), on this machine's
    /// /var/lib/loomworks: Debian's rpm cannot run scriptlets in an --root tree, which has no shell.
    /// </summary>
    [Fact]
    public async Task Erase_keeps_the_tenants_data_unless_LOOMWORKS_PURGE_DATA_is_yes()
    {
        var postun = await Tool.RunOkAsync("rpm", "-qp", "--queryformat", "%{POSTUN}", packages.RpmPath);
        await using var machine = await DpkgMachine.LockAsync();
        await machine.PurgeAsync("loomworks-erp");
        try
        {
            var cluster = "/var/lib/loomworks/postgres/PG_VERSION";
            var marker = "/var/lib/loomworks.state/loomworks-cluster.marker";
            foreach (var file in new[] { cluster, marker })
            {
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                await File.WriteAllTextAsync(file, "15");
            }

            var (upgraded, upgradeOutput) = await Tool.RunAsync("sh", ["-c", postun, "postun", "1"]);
            var (erased, eraseOutput) = await Tool.RunAsync("sh", ["-c", postun, "postun", "0"]);
            Assert.True(upgraded == 0 && erased == 0, upgradeOutput + eraseOutput);
            Assert.DoesNotContain("kept", upgradeOutput);
            Assert.Contains("kept /var/lib/loomworks", eraseOutput);
            Assert.Contains("LOOMWORKS_PURGE_DATA=yes rpm -e loomworks-erp", eraseOutput);
            Assert.True(File.Exists(cluster) && File.Exists(marker), "rpm -e removed the tenants' data");

            var (purged, purgeOutput) = await Tool.RunAsync("sh", ["-c", postun, "postun", "0"],
                environment: new Dictionary<string, string?> { ["LOOMWORKS_PURGE_DATA"] = "yes" });
            Assert.True(purged == 0, purgeOutput);
            Assert.False(Directory.Exists("/var/lib/loomworks"), "LOOMWORKS_PURGE_DATA=yes rpm -e kept /var/lib/loomworks");
            Assert.False(Directory.Exists("/var/lib/loomworks.state"), "LOOMWORKS_PURGE_DATA=yes rpm -e kept the marker");
        }
        finally
        {
            await machine.PurgeAsync("loomworks-erp");
        }
    }

    [Fact]
    public async Task Installs_into_an_rpm_root_and_its_program_runs()
    {
        using var root = new Scratch("rpm-root");
        await Tool.RunOkAsync("rpm", "--root", root.Path, "--initdb");
        // --nodeps: the tree has no glibc or postgresql packages; --noscripts: it has no /bin/sh to run them with.
        await Tool.RunOkAsync("rpm", "--root", root.Path, "-i", "--nodeps", "--noscripts", packages.RpmPath);
        var installed = await Tool.RunOkAsync("rpm", "--root", root.Path, "-q", "loomworks-erp");
        Assert.Equal($"loomworks-erp-{PackageFixture.Version}-1.x86_64", installed.Trim());
        var version = await Tool.RunOkAsync(root.File("usr/bin/loomworks"), "version");
        Assert.Equal(PackageFixture.Version, version.Trim());
        Assert.True(File.Exists(root.File("usr/lib/systemd/system/loomworks.service")));
    }
}
