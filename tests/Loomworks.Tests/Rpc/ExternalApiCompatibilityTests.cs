using System.Diagnostics;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>Odoo 18's External API examples and the npm clients, unchanged, against the real server.</summary>
public sealed class ExternalApiCompatibilityTests(ExternalApiCompatibilityTests.Fixture fixture)
    : IClassFixture<ExternalApiCompatibilityTests.Fixture>
{
    public sealed class Fixture(PostgresFixture postgres) : RpcServerFixture(postgres, "rpc_compat");

    private readonly RpcServer _server = fixture.Server;
    private readonly PostgresFixture postgres = fixture.Postgres;

    private static string SourceFolder([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string workingDirectory, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = workingDirectory };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    [Fact]
    public async Task Python_xmlrpc_client_runs_the_documentation_examples()
    {
        var (exitCode, output) = await RunAsync("python3", SourceFolder(), "odoo_external_api.py", _server.Url, _server.Db, "admin",
            "admin");
        Assert.True(exitCode == 0, output);
        Assert.Contains("OK", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Python_examples_work_with_an_api_key_in_place_of_the_password()
    {
        using var client = new RpcClient(_server.Url);
        var key = (string)(await client.ObjectAsync(_server.Db, 2, "admin", "res.users.apikeys", "generate", ["python examples"]))!;
        Assert.Equal(40, key.Length);
        var (exitCode, output) = await RunAsync("python3", SourceFolder(), "odoo_external_api.py", _server.Url, _server.Db, "admin", key);
        Assert.True(exitCode == 0, output);
        var stored = await postgres.ScalarAsync<string>(_server.Db, "SELECT key FROM res_users_apikeys WHERE name = 'python examples'");
        Assert.StartsWith("$pbkdf2-sha512$6000$", stored, StringComparison.Ordinal);
        Assert.DoesNotContain(key, stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Npm_clients_odoo_await_and_odoo_xmlrpc_work_unchanged()
    {
        var folder = Path.Combine(SourceFolder(), "clients");
        if (!Directory.Exists(Path.Combine(folder, "node_modules")))
        {
            var (npmExit, npmOutput) = await RunAsync("npm", folder, "ci", "--no-audit", "--no-fund");
            Assert.True(npmExit == 0, npmOutput);
        }
        var (exitCode, output) = await RunAsync("node", folder, "node_clients.js", _server.Url, _server.Db, "admin", "admin");
        Assert.True(exitCode == 0, output);
        Assert.Contains("OK", output, StringComparison.Ordinal);
    }
}
