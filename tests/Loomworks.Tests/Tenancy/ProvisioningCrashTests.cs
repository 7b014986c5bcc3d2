using Loomworks.Postgres;
using Loomworks.Security;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

public sealed class ProvisioningCrashTests(PostgresFixture postgres)
{
    public static TheoryData<string> Steps => new(ProvisioningSteps.All.Where(s => s != ProvisioningSteps.Active));

    [Theory]
    [MemberData(nameof(Steps))]
    public async Task A_kill_9_after_each_step_is_completed_or_rolled_back_by_the_next_start(string step)
    {
        var mgmt = "crash_" + step + "_mgmt";
        var subdomain = "crash-" + step.Replace('_', '-');
        await postgres.DropDatabaseAsync(mgmt);
        var config = TenancyHost.BaseSettings(postgres, mgmt);
        string[] Args(params string[] command) => [.. command, "--db-host", config["db_host"], "--db-port", config["db_port"],
            "--db-user", config["db_user"], "--loomworks-mgmt-db", mgmt];

        // The step that is finished rather than rolled back also takes the CLI's hashed form of the password.
        string[] password = step == ProvisioningSteps.AdminCreated ? ["--admin-password-hash", Passwords.Hash("pw")]
            : ["--admin-password", "pw"];
        var (crashed, output) = await LoomworksProcess.RunAsync(Args(["tenant", "create", subdomain, .. password]),
            new Dictionary<string, string> { [CrashPoint.Variable] = "provision:" + step });
        Assert.Equal(137, crashed);

        var (listed, listing) = await LoomworksProcess.RunAsync(Args("tenant", "list"));
        Assert.Equal(0, listed);
        var database = await postgres.ScalarAsync<int?>("postgres", $"SELECT 1 FROM pg_database WHERE datname = '{subdomain}'");
        var role = await postgres.ScalarAsync<int?>("postgres",
            $"SELECT 1 FROM pg_roles WHERE rolname = '{TenantProvisioner.RoleNameFor(subdomain)}'");
        if (step == ProvisioningSteps.AdminCreated)
        {
            Assert.Contains($"{subdomain} ", listing, StringComparison.Ordinal);
            Assert.Contains("active", listing, StringComparison.Ordinal);
            Assert.NotNull(database);
            Assert.NotNull(role);
            Assert.Equal(1, await postgres.ScalarAsync<int>(subdomain,
                "SELECT count(*)::int FROM res_users WHERE id = 2 AND password LIKE '$pbkdf2-sha512$600000$%'"));
            Assert.Equal(0, (await LoomworksProcess.RunAsync(Args("tenant", "delete", subdomain, "--force"))).ExitCode);
        }
        else
        {
            Assert.DoesNotContain(subdomain, listing, StringComparison.Ordinal);
            Assert.Null(database);
            Assert.Null(role);
        }
        Assert.Equal(0L, await postgres.ScalarAsync<long>(mgmt, "SELECT count(*) FROM loomworks_tenant_job WHERE state = 'running'"));
        _ = output;
    }
}
