using System.Diagnostics;
using System.Globalization;
using System.Text;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

/// <summary>
/// The real .deb on this machine, as an operator uses it: install, create a tenant, purge, reinstall and the tenant is
/// served again; only a purge that asks for it (LOOMWORKS_PURGE_DATA=yes or the debconf answer) deletes the data.
/// </summary>
[Collection(PackageGroup.Name)]
public sealed class DebDataLifecycleTests(PackageFixture packages)
{
    private const string Package = "loomworks-erp";
    private const string DataDir = "/var/lib/loomworks";
    private const string StateDir = "/var/lib/loomworks.state";
    private const string Tenant = "purgekept";

    [Fact]
    public async Task Purge_keeps_the_tenants_data_for_a_reinstall_and_removes_it_only_when_asked()
    {
        await using var machine = await DpkgMachine.LockAsync();
        await machine.PurgeAsync(Package, removeData: true);
        try
        {
            await machine.DpkgAsync("-i", packages.DebPath);
            var ports = (Http: Scratch.FreePort(), Db: Scratch.FreePort());
            await using (var server = await ServiceUserServer.StartAsync(ports))
            {
                var (created, output) = await AsServiceUserAsync(ports.Db, "tenant", "create", Tenant, "--admin-password", "pw");
                Assert.True(created == 0, output);
                Assert.True(await AuthenticateAsync(ports.Http, await DatabaseOfAsync(ports.Db)) > 0);
            }

            var purge = await machine.DpkgAsync("-P", Package);
            Assert.Contains("kept /var/lib/loomworks", purge);
            Assert.True(File.Exists(Path.Combine(DataDir, "postgres", "PG_VERSION")), "the purge removed the embedded cluster");
            Assert.True(File.Exists(Path.Combine(StateDir, "loomworks-cluster.marker")), "the purge removed the cluster's marker");
            Assert.NotNull(DpkgMachine.PasswdEntry("loomworks"));
            Assert.False(Path.Exists("/etc/loomworks"), "the purge kept the configuration");

            await machine.DpkgAsync("-i", packages.DebPath);
            await using (var server = await ServiceUserServer.StartAsync(ports))
            {
                var (listed, list) = await AsServiceUserAsync(ports.Db, "tenant", "list");
                Assert.True(listed == 0, list);
                Assert.Contains(Tenant, list);
                Assert.True(await AuthenticateAsync(ports.Http, await DatabaseOfAsync(ports.Db)) > 0);
            }

            purge = await machine.DpkgAsync(["-P", Package], new Dictionary<string, string?> { ["LOOMWORKS_PURGE_DATA"] = "yes" });
            Assert.DoesNotContain("kept", purge);
            Assert.False(Path.Exists(DataDir), $"{DataDir} is left after a purge with LOOMWORKS_PURGE_DATA=yes");
            Assert.False(Path.Exists(StateDir), $"{StateDir} is left after a purge with LOOMWORKS_PURGE_DATA=yes");
            Assert.Null(DpkgMachine.PasswdEntry("loomworks"));

            // The debconf answer, preseeded as an unattended operator would, removes the data as well.
            await machine.DpkgAsync("-i", packages.DebPath);
            await File.WriteAllTextAsync(Path.Combine(DataDir, "tenant-data"), "kept until asked");
            await Tool.RunOkAsync("sh", "-c", $"echo '{Package} {Package}/purge_data boolean true' | debconf-set-selections");
            await machine.DpkgAsync("-P", Package);
            Assert.False(Path.Exists(DataDir), $"{DataDir} is left after a purge answered 'remove'");
            Assert.Null(DpkgMachine.PasswdEntry("loomworks"));
        }
        finally
        {
            await machine.PurgeAsync(Package, removeData: true);
        }
    }

    /// <summary>Runs the installed CLI as the service user against the package's configuration.</summary>
    private static Task<(int ExitCode, string Output)> AsServiceUserAsync(int dbPort, params string[] command) =>
        Tool.RunAsync("setpriv", ["--reuid=loomworks", "--regid=loomworks", "--init-groups", "--reset-env", "/usr/bin/loomworks",
            .. command, "--config", "/etc/loomworks/loomworks.conf", "--db-port", dbPort.ToString(CultureInfo.InvariantCulture)],
            workingDirectory: "/", timeout: TimeSpan.FromMinutes(3));

    private static async Task<string> DatabaseOfAsync(int dbPort)
    {
        var (exitCode, output) = await AsServiceUserAsync(dbPort, "tenant", "show", Tenant);
        Assert.True(exitCode == 0, output);
        return output.Split('\n').Single(l => l.StartsWith("database: ", StringComparison.Ordinal))["database: ".Length..].Trim();
    }

    /// <summary>Odoo's common.authenticate through the served tenant: the administrator's uid, or 0 when refused.</summary>
    private static async Task<long> AuthenticateAsync(int httpPort, string database)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:{httpPort}/jsonrpc"));
        request.Headers.Add("X-Loomworks-Tenant", Tenant);
        request.Content = new StringContent(System.Text.Json.JsonSerializer.Serialize(new
        {
            jsonrpc = "2.0", method = "call", id = 1,
            @params = new { service = "common", method = "authenticate", args = new object[] { database, "admin", "pw", new { } } },
        }), Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        using var json = System.Text.Json.JsonDocument.Parse(body);
        return json.RootElement.TryGetProperty("result", out var result) && result.ValueKind == System.Text.Json.JsonValueKind.Number
            ? result.GetInt64()
            : throw new InvalidOperationException($"authenticate answered {body}");
    }

    /// <summary>The installed server as the loomworks user on the package's configuration and data_dir, until disposed.</summary>
    private sealed class ServiceUserServer : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        private ServiceUserServer(Process process) => _process = process;

        public static async Task<ServiceUserServer> StartAsync((int Http, int Db) ports)
        {
            var info = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true,
                WorkingDirectory = "/" };
            foreach (var argument in new[] { "--reuid=loomworks", "--regid=loomworks", "--init-groups", "--reset-env",
                         "/usr/bin/loomworks", "server", "--config", "/etc/loomworks/loomworks.conf",
                         "--http-port", ports.Http.ToString(CultureInfo.InvariantCulture),
                         "--db-port", ports.Db.ToString(CultureInfo.InvariantCulture), "--http-interface", "127.0.0.1" })
            {
                info.ArgumentList.Add(argument);
            }
            var server = new ServiceUserServer(Process.Start(info)!);
            server._process.OutputDataReceived += (_, e) => server.Append(e.Data);
            server._process.ErrorDataReceived += (_, e) => server.Append(e.Data);
            server._process.BeginOutputReadLine();
            server._process.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (!server.Output.Contains("is serving", StringComparison.Ordinal))
            {
                if (server._process.HasExited || DateTime.UtcNow > deadline)
                {
                    await server.DisposeAsync();
                    Assert.Fail($"the installed server did not start:\n{server.Output}");
                }
                await Task.Delay(200);
            }
            return server;
        }

        private string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        private void Append(string? line)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _ = kill(_process.Id, 15);
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                try
                {
                    await _process.WaitForExitAsync(stop.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
            _process.Dispose();
        }

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        private static extern int kill(int pid, int signal);
    }
}
