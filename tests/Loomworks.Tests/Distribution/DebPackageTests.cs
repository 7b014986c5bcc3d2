using System.Net;
using System.Text.RegularExpressions;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

[Collection(PackageGroup.Name)]
public sealed partial class DebPackageTests(PackageFixture packages)
{
    private const string Package = "loomworks-erp";
    private static readonly string[] PackedModes = ["-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x", "lrwxrwxrwx"];

    [Fact]
    public async Task Control_names_the_version_dependencies_and_conffile()
    {
        var info = await Tool.RunOkAsync("dpkg-deb", "-I", packages.DebPath);
        Assert.Contains($" Package: {Package}\n", info, StringComparison.Ordinal);
        Assert.Contains($" Version: {PackageFixture.Version}\n", info, StringComparison.Ordinal);
        Assert.Contains(" Architecture: amd64\n", info, StringComparison.Ordinal);
        var depends = DependsLine().Match(info).Groups[1].Value;
        foreach (var dependency in new[] { "adduser", "libc6", "libgcc-s1", "libssl3", "libstdc++6", "zlib1g", "tzdata",
                     "ca-certificates", "postgresql-client", "pgbackrest" })
        {
            Assert.Contains(dependency, depends.Split(',').Select(d => d.Trim().Split(' ')[0]));
        }
        Assert.Contains(" Recommends: postgresql (>= 15)\n", info, StringComparison.Ordinal);
        var conffiles = await Tool.RunOkAsync("dpkg-deb", "-f", packages.DebPath, "Package");
        Assert.Equal(Package, conffiles.Trim());
        var control = await ControlFileAsync("conffiles");
        Assert.Equal("/etc/loomworks/loomworks.conf", control.Trim());
        foreach (var script in new[] { "postinst", "prerm", "postrm", "config" })
        {
            Assert.StartsWith("#!/bin/sh", await ControlFileAsync(script), StringComparison.Ordinal);
        }
        Assert.Contains("Template: loomworks-erp/purge_data\nType: boolean\nDefault: false\n", await ControlFileAsync("templates"),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Contents_are_the_documented_tree_with_normalised_modes()
    {
        var listing = await Tool.RunOkAsync("dpkg-deb", "-c", packages.DebPath);
        var entries = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => ListingLine().Match(line))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups["path"].Value, m => (Mode: m.Groups["mode"].Value, Owner: m.Groups["owner"].Value));
        Assert.True(entries.Count > 100, listing);
        Assert.All(entries, e => Assert.Equal("root/root", e.Value.Owner));
        Assert.Equal("-rwxr-xr-x", entries["./usr/lib/loomworks/loomworks"].Mode);
        Assert.Equal("lrwxrwxrwx", entries["./usr/bin/loomworks -> ../lib/loomworks/loomworks"].Mode);
        Assert.Equal("-rw-r--r--", entries["./etc/loomworks/loomworks.conf"].Mode);
        Assert.Equal("-rw-r--r--", entries["./lib/systemd/system/loomworks.service"].Mode);
        Assert.Equal("-rw-r--r--", entries["./usr/share/doc/loomworks-erp/copyright"].Mode);
        Assert.Equal("-rw-r--r--", entries["./usr/share/man/man1/loomworks.1.gz"].Mode);
        Assert.StartsWith("d", entries["./var/lib/loomworks/"].Mode, StringComparison.Ordinal);
        Assert.StartsWith("d", entries["./var/log/loomworks/"].Mode, StringComparison.Ordinal);
        Assert.StartsWith("d", entries["./var/lib/loomworks.state/"].Mode, StringComparison.Ordinal);
        Assert.Contains("./usr/lib/loomworks/libcoreclr.so", entries.Keys);
        Assert.Contains("./usr/lib/loomworks/loomworks.dll", entries.Keys);
        Assert.Contains("./usr/lib/loomworks/Loomworks.Core.dll", entries.Keys);
        // dotnet publish leaves 0744 files and mktemp 0700 folders: nothing may keep either.
        Assert.All(entries, e => Assert.Contains(e.Value.Mode, PackedModes));
        Assert.DoesNotContain(entries.Keys, path => path.StartsWith("./opt/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Lintian_finds_no_error_and_every_override_has_a_reason()
    {
        var (exitCode, output) = await Tool.RunAsync("lintian", ["--fail-on", "error", "--tag-display-limit", "0", packages.DebPath],
            timeout: TimeSpan.FromMinutes(3));
        Assert.True(exitCode == 0, output);
        Assert.DoesNotMatch(new Regex("^E: ", RegexOptions.Multiline), output);
        var overrides = File.ReadAllLines(Tool.Repo("infrastructure", "packaging", "debian", "lintian-overrides"));
        for (var i = 0; i < overrides.Length; i++)
        {
            if (overrides[i].StartsWith($"{Package}:", StringComparison.Ordinal))
            {
                Assert.True(i > 0 && overrides[i - 1].StartsWith('#'), $"override without a reason above it: {overrides[i]}");
            }
        }
    }

    [Fact]
    public async Task Installs_runs_as_its_system_user_and_purges_without_leftovers()
    {
        await using var machine = await DpkgMachine.LockAsync();
        await machine.PurgeAsync(Package);
        using var data = new Scratch("deb-data");
        try
        {
            await machine.DpkgAsync("-i", packages.DebPath);

            var user = DpkgMachine.PasswdEntry("loomworks");
            Assert.NotNull(user);
            Assert.Equal("/var/lib/loomworks", user.Value.Home);
            Assert.Equal("/usr/sbin/nologin", user.Value.Shell);
            Assert.True(user.Value.Uid is > 0 and < 1000, $"not a system user: uid {user.Value.Uid}");
            Assert.Equal(PackageFixture.Version, (await Tool.RunOkAsync("/usr/bin/loomworks", "version")).Trim());
            Assert.Equal("loomworks", await StatOwnerAsync("/var/lib/loomworks"));
            Assert.Equal("loomworks", await StatOwnerAsync("/var/log/loomworks"));
            Assert.Equal("640 root:loomworks", (await Tool.RunOkAsync("stat", "-c", "%a %U:%G", "/etc/loomworks/loomworks.conf")).Trim());

            // The unit as installed, with its ExecStart present: no error and no warning.
            var verify = await Tool.RunOkAsync("systemd-analyze", "verify", "/lib/systemd/system/loomworks.service");
            Assert.Equal("", verify.Trim());

            await Tool.RunOkAsync("chown", "loomworks:loomworks", data.Path);
            var httpPort = Scratch.FreePort();
            var dbPort = Scratch.FreePort();
            var (exitCode, output) = await RunAsServiceUserUntilHealthyAsync(data.Path, httpPort, dbPort);
            Assert.True(exitCode == 0, $"loomworks did not stop cleanly on SIGTERM (exit {exitCode}):\n{output}");
            Assert.Contains($"Loomworks {PackageFixture.Version} is serving", output, StringComparison.Ordinal);

            await machine.DpkgAsync("-P", Package);
            var (status, _) = await Tool.RunAsync("dpkg-query", ["-W", Package]);
            Assert.NotEqual(0, status);
            // Its server ran on a scratch data_dir: /var/lib/loomworks held nothing to keep, so the marker goes too.
            foreach (var path in new[] { "/usr/lib/loomworks", "/usr/bin/loomworks", "/etc/loomworks", "/var/lib/loomworks",
                         "/var/lib/loomworks.state", "/var/log/loomworks", "/lib/systemd/system/loomworks.service",
                             "/usr/share/doc/loomworks-erp",
                         "/etc/systemd/system/multi-user.target.wants/loomworks.service" })
            {
                Assert.False(Path.Exists(path), $"{path} is left after dpkg -P");
            }
            Assert.Null(DpkgMachine.PasswdEntry("loomworks"));
            Assert.DoesNotContain(File.ReadLines("/etc/group"), line => line.StartsWith("loomworks:", StringComparison.Ordinal));
        }
        finally
        {
            await machine.PurgeAsync(Package);
        }
    }

    /// <summary>
    /// Runs the installed /usr/bin/loomworks as the loomworks user on its embedded PostgreSQL until /web/health answers
    /// 200, then stops it with SIGTERM and returns its exit code and output.
    /// </summary>
    private static async Task<(int ExitCode, string Output)> RunAsServiceUserUntilHealthyAsync(string dataDir, int httpPort, int dbPort)
    {
        var output = new System.Text.StringBuilder();
        var info = new System.Diagnostics.ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        // setpriv execs the program itself, so the pid we hold is loomworks' and SIGTERM reaches it directly.
        foreach (var argument in new[] { "--reuid=loomworks", "--regid=loomworks", "--init-groups", "--reset-env",
                     "/usr/bin/loomworks", "server", "--config", "/etc/loomworks/loomworks.conf", "--data-dir", dataDir,
                     "--http-port", httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--db-port", dbPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--http-interface", "127.0.0.1" })
        {
            info.ArgumentList.Add(argument);
        }
        using var process = System.Diagnostics.Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow.AddSeconds(90);
            HttpStatusCode? status = null;
            while (DateTime.UtcNow < deadline && !process.HasExited)
            {
                try
                {
                    using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{httpPort}/web/health"));
                    status = response.StatusCode;
                    if (status == HttpStatusCode.OK)
                    {
                        Assert.Contains("\"pass\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }
                await Task.Delay(250);
            }
            Assert.True(status == HttpStatusCode.OK, $"/web/health never answered 200 (last: {status}):\n{Snapshot()}");
            _ = kill(process.Id, 15);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(stop.Token);
            return (process.ExitCode, Snapshot());
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }

        string Snapshot()
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    private async Task<string> ControlFileAsync(string name)
    {
        using var scratch = new Scratch("deb-control");
        await Tool.RunOkAsync("dpkg-deb", "-e", packages.DebPath, scratch.File("DEBIAN"));
        return File.ReadAllText(Path.Combine(scratch.File("DEBIAN"), name));
    }

    private static async Task<string> StatOwnerAsync(string path) => (await Tool.RunOkAsync("stat", "-c", "%U", path)).Trim();

    [GeneratedRegex(@"^ Depends: (.*)$", RegexOptions.Multiline)]
    private static partial Regex DependsLine();

    [GeneratedRegex(@"^(?<mode>[-dlrwxst]{10}) (?<owner>\S+)\s+\d+ \S+ \S+ (?<path>.+)$")]
    private static partial Regex ListingLine();

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
