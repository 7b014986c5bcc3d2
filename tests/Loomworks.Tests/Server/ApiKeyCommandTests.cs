using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Security;
using Loomworks.Server.Cli;
using Loomworks.Server.Hosting;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Server;

/// <summary>
/// The real <c>loomworks tenant apikey</c> commands against a tenant in a management database: a key printed once that
/// authenticates its user, lists that never show it, revocation, and hostile input refused with nothing changed.
/// </summary>
public sealed class ApiKeyCommandTests(PostgresFixture postgres)
{
    private async Task<(string Mgmt, string Db)> TenantAsync(string test)
    {
        var mgmt = await postgres.CreateDatabaseAsync($"apikey_{test}_mgmt");
        await using (var connection = new NpgsqlConnection(postgres.Endpoint.ConnectionString(mgmt) + ";Pooling=false"))
        {
            await connection.OpenAsync();
            await SchemaMigrator.ApplyAsync(connection, ManagementMigrations.All, CancellationToken.None);
        }
        var db = $"apikey_{test}_acme";
        await postgres.CreateDatabaseAsync(db);
        await using (var connection = await Sql.OpenUnpooledAsync(postgres.Endpoint, db))
        {
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(connection, setup.Migrations, CancellationToken.None);
            await setup.CreateAdminUserAsync(connection, "admin", Passwords.Hash("admin"), CancellationToken.None);
        }
        await postgres.ExecuteAsync(mgmt, $"""
            INSERT INTO loomworks_tenant (name, subdomain, database_name, state) VALUES
                ('Acme', 'acme', '{db}', 'active'), ('New', 'new', 'apikey_{test}_new', 'provisioning')
            """);
        return (mgmt, db);
    }

    private Task<(int ExitCode, string Output)> RunAsync(string mgmt, params string[] arguments) =>
        LoomworksProcess.RunAsync([.. arguments,
            "--db-host", postgres.Endpoint.Host, "--db-port", $"{postgres.Endpoint.Port}", "--db-user", postgres.Endpoint.Username,
            "--loomworks-mgmt-db", mgmt]);

    private Task<long> KeysAsync(string db) => postgres.ScalarAsync<long>(db, "SELECT count(*) FROM res_users_apikeys");

    private async Task<long?> KeyUserAsync(string db, string key)
    {
        await using var connection = await Sql.OpenUnpooledAsync(postgres.Endpoint, db);
        return (await ApiKeys.FindUserAsync(connection, key, CancellationToken.None))?.Uid;
    }

    [Fact]
    public async Task A_key_is_printed_once_works_for_its_user_is_listed_without_itself_and_stops_working_when_revoked()
    {
        var (mgmt, db) = await TenantAsync("roundtrip");
        const string description = "Claude \"desktop\" agent; DROP TABLE res_users; --'";
        var (exitCode, output) = await RunAsync(mgmt, "tenant", "apikey", "create", "acme", "admin", "--description", description,
            "--scope", "rpc");
        Assert.Equal(0, exitCode);
        var key = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            line => line.Length == 40 && line.All(char.IsAsciiHexDigitLower));
        Assert.Contains("shown only this once", output, StringComparison.Ordinal);
        Assert.Equal(2L, await KeyUserAsync(db, key));
        Assert.Equal(description, await postgres.ScalarAsync<string>(db, "SELECT name FROM res_users_apikeys"));

        var list = await RunAsync(mgmt, "tenant", "apikey", "list", "acme");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(description, list.Output, StringComparison.Ordinal);
        Assert.Contains("admin", list.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(key[..8], list.Output, StringComparison.Ordinal);
        var byLogin = await RunAsync(mgmt, "tenant", "apikey", "list", "acme", "admin");
        Assert.Contains(description, byLogin.Output, StringComparison.Ordinal);

        var id = await postgres.ScalarAsync<int>(db, "SELECT id FROM res_users_apikeys");
        var revoke = await RunAsync(mgmt, "tenant", "apikey", "revoke", "acme", $"{id}");
        Assert.Equal(0, revoke.ExitCode);
        Assert.Contains($"revoked API key {id}", revoke.Output, StringComparison.Ordinal);
        Assert.Null(await KeyUserAsync(db, key));
        Assert.Equal(0L, await KeysAsync(db));
        var again = await RunAsync(mgmt, "tenant", "apikey", "revoke", "acme", $"{id}");
        Assert.Equal(ApiKeyCommand.NotFoundExitCode, again.ExitCode);
        Assert.Contains($"the tenant has no API key {id}", again.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hostile_input_is_refused_with_a_message_and_an_exit_code_and_nothing_changes()
    {
        var (mgmt, db) = await TenantAsync("hostile");
        var huge = new string('x', 100_000);
        (string[] Arguments, int ExitCode, string Message)[] refused =
        [
            (["create", "nosuch", "admin", "--description", "d"], ApiKeyCommand.NotFoundExitCode, "there is no tenant 'nosuch'"),
            (["create", "new", "admin", "--description", "d"], ApiKeyCommand.NotUsableExitCode, "tenant 'new' is provisioning"),
            (["create", "acme", "nobody", "--description", "d"], ApiKeyCommand.NotFoundExitCode, "no active user has the login 'nobody'"),
            (["create", "acme", "admin' OR '1'='1", "--description", "d"], ApiKeyCommand.NotFoundExitCode, "no active user"),
            (["create", "acme", "admin", "--description", huge], 2, "the description must be 1 to 256 characters"),
            (["create", "acme", "admin", "--description", "two\nlines"], 2, "without control characters"),
            (["create", "acme", "admin", "--description", "  "], 2, "the description must be"),
            (["create", "acme", "admin"], 2, "--description"),
            (["create", "acme", "admin", "--description", "d", "--scope", "rpc'; --"], 2, "scope 'rpc'; --' must be"),
            (["create", new string('a', 5000), "admin", "--description", "d"], 2, "a tenant name must be 1 to 63 characters"),
            (["list", "acme", "nobody"], ApiKeyCommand.NotFoundExitCode, "no active user has the login 'nobody'"),
            (["list", "nosuch"], ApiKeyCommand.NotFoundExitCode, "there is no tenant 'nosuch'"),
            (["revoke", "acme", "1; DELETE FROM res_users_apikeys"], 2, "must be a positive whole number"),
            (["revoke", "acme", "-1"], 2, "must be a positive whole number"),
            (["revoke", "acme", "99999999999"], 2, "must be a positive whole number"),
            (["revoke", "acme", "424242"], ApiKeyCommand.NotFoundExitCode, "the tenant has no API key 424242"),
        ];
        var keep = await RunAsync(mgmt, "tenant", "apikey", "create", "acme", "admin", "--description", "kept");
        Assert.Equal(0, keep.ExitCode);
        foreach (var (arguments, exitCode, message) in refused)
        {
            var (code, output) = await RunAsync(mgmt, ["tenant", "apikey", .. arguments]);
            Assert.True(code == exitCode, $"{string.Join(' ', arguments.Select(a => a.Length > 40 ? a[..40] : a))}: {code}\n{output}");
            Assert.Contains(message, output, StringComparison.Ordinal);
            Assert.Equal(1L, await KeysAsync(db));
        }
        Assert.Equal("kept", await postgres.ScalarAsync<string>(db, "SELECT name FROM res_users_apikeys"));
    }
}
