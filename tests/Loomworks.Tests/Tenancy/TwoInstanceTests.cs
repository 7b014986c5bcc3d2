using System.Net;
using Loomworks.Backups;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Loomworks.Testing;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Tenancy;

public sealed class TwoInstanceTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpStatusCode> StatusAsync(TenancyHost host, string tenant)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/web/tenant/info");
        request.Headers.Add("X-Loomworks-Tenant", tenant);
        return (await host.Client.SendAsync(request, Ct)).StatusCode;
    }

    [Fact]
    public async Task A_suspend_through_one_instance_is_enforced_by_the_other_within_a_second_even_after_its_listener_is_killed()
    {
        const string mgmt = "two_inst_mgmt";
        await using var one = await TenancyHost.StartAsync(postgres, mgmt);
        await using var two = await TenancyHost.StartAsync(postgres, mgmt);
        await one.Get<TenantProvisioner>().CreateAsync(new TenantRequest("Two", "two-inst", "admin", "pw"), Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.OK,
            "the second instance serves the tenant",
            TimeSpan.FromSeconds(5));
        var lookups = two.Get<TenantCache>().DatabaseLookups;
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(two, "two-inst"));
        Assert.Equal(lookups, two.Get<TenantCache>().DatabaseLookups); // served from the cache

        await one.Get<TenantLifecycle>().SuspendAsync("two-inst", "test", Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.Forbidden,
            "the suspension made by the first instance reaches the second", TimeSpan.FromSeconds(5));

        var listener = two.Get<TenantChangeListener>();
        var connects = listener.Connects;
        await postgres.ExecuteAsync("postgres",
            $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{listener.ApplicationName}'");
        await Eventually.HoldsAsync(() => Task.FromResult(listener.Connects > connects), "the listener reconnects",
            TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(two, "two-inst"));
        await one.Get<TenantLifecycle>().ActivateAsync("two-inst", "test", Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-inst") == HttpStatusCode.OK,
            "the activation reaches the second instance", TimeSpan.FromSeconds(5));
        await one.Get<TenantLifecycle>().DeleteAsync("two-inst", force: true, "test", Ct);
    }

    [Fact]
    public async Task State_changes_made_by_the_restore_and_the_database_manager_reach_the_other_instance_and_are_logged()
    {
        const string mgmt = "two_inst_restore_mgmt";
        await using var one = await TenancyHost.StartAsync(postgres, mgmt);
        await using var two = await TenancyHost.StartAsync(postgres, mgmt);
        var tenant = await one.Get<TenantProvisioner>().CreateAsync(new TenantRequest("Restored", "two-rest", "admin", "pw"), Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-rest") == HttpStatusCode.OK,
            "the other instance serves the tenant", TimeSpan.FromSeconds(5));

        // The restore marks the tenant restoring before its swap; a crash there leaves a job that recovery rolls back.
        await one.Get<TenantLifecycle>().SetStateAsync(tenant.Id, TenantStates.Restoring, "restoring", "restore job 0", "restore", Ct);
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-rest") == HttpStatusCode.ServiceUnavailable,
            "the other instance answers 503 while the tenant is restoring", TimeSpan.FromSeconds(5));
        await using (var insert = one.Get<ManagementDatabase>().DataSource.CreateCommand("""
            INSERT INTO loomworks_restore_job (tenant_id, source_database, target_database, target_type, target, step, step_name,
                new_database, scratch_dir)
            VALUES ($1, $2, $2, 'lsn', '0/0', 1, 'files_restored', 'lwrestore_two_rest', $3)
            """))
        {
            insert.Parameters.AddWithValue(tenant.Id);
            insert.Parameters.AddWithValue(tenant.DatabaseName);
            insert.Parameters.AddWithValue(Path.Combine(Path.GetTempPath(), "loomworks-no-scratch-" + Guid.NewGuid().ToString("N")));
            await insert.ExecuteNonQueryAsync(Ct);
        }
        Assert.Equal(1, await one.Get<SnapshotsFeature>().Restore.RecoverAsync(Ct));
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-rest") == HttpStatusCode.OK,
            "the other instance serves the tenant", TimeSpan.FromSeconds(5));

        // The database manager's drop first takes the tenant off the routes by archiving it.
        await using (var connection = await one.Get<ManagementDatabase>().DataSource.OpenConnectionAsync(Ct))
        {
            await TenantRegistration.SetStateAsync(connection, null, tenant.DatabaseName, TenantStates.Archived, Ct);
        }
        await Eventually.HoldsAsync(async () => await StatusAsync(two, "two-rest") == HttpStatusCode.Forbidden,
            "the other instance refuses the archived tenant", TimeSpan.FromSeconds(5));

        var events = (await one.Get<TenantEventLog>().ListAsync("two-rest", Ct)).Select(e => (e.Event, e.Actor)).Reverse().ToList();
        Assert.Equal([("provisioning", "api"), ("active", "api"), ("restoring", "restore"), ("active", "restore"),
            ("archived", "database manager")], events);
        await using (var forget = one.Get<ManagementDatabase>().DataSource.CreateCommand(
            "DELETE FROM loomworks_restore_job WHERE tenant_id = $1"))
        {
            forget.Parameters.AddWithValue(tenant.Id);
            await forget.ExecuteNonQueryAsync(Ct);
        }
        await one.Get<TenantLifecycle>().DeleteAsync("two-rest", force: true, "test", Ct);
    }
}
