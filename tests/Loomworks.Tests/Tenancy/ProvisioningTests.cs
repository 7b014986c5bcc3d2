using Loomworks.Records;
using Loomworks.Security;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Tenancy;

public sealed class ProvisioningTests(PostgresFixture postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static TenantRequest Request(string subdomain, int maxUsers = 10, int maxStorageGb = 10, int maxAi = 1000) =>
        new("Tenant " + subdomain, subdomain, "admin", "pw-" + subdomain, MaxUsers: maxUsers, MaxStorageGb: maxStorageGb,
            MaxAiOperationsDaily: maxAi);

    [Fact]
    public async Task A_tenant_is_provisioned_active_with_its_admin_and_a_role_that_alone_may_connect()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_iso_mgmt");
        var provisioner = host.Get<TenantProvisioner>();
        var a = await provisioner.CreateAsync(Request("prov-iso-a"), Ct);
        var b = await provisioner.CreateAsync(Request("prov-iso-b"), Ct);

        Assert.Equal(TenantStates.Active, a.State);
        await using (var connection = await host.Get<TenantDataSources>().For(a.DatabaseName).OpenConnectionAsync(Ct))
        {
            Assert.True(await TenantSchema.CheckPasswordAsync(connection, "admin", "pw-prov-iso-a", Ct));
        }
        var roleA = TenantProvisioner.RoleNameFor(a.DatabaseName);
        await using (var own = new NpgsqlConnection(new PostgresEndpoint(postgres.Endpoint.Host, postgres.Endpoint.Port, roleA, null)
            .ConnectionString(a.DatabaseName) + ";Pooling=false"))
        {
            await own.OpenAsync(Ct);
        }
        await using var other = new NpgsqlConnection(new PostgresEndpoint(postgres.Endpoint.Host, postgres.Endpoint.Port, roleA, null)
            .ConnectionString(b.DatabaseName) + ";Pooling=false");
        var refused = await Assert.ThrowsAsync<PostgresException>(() => other.OpenAsync(Ct));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);

        await host.Get<TenantLifecycle>().DeleteAsync(a.Subdomain, force: true, "test", Ct);
        await host.Get<TenantLifecycle>().DeleteAsync(b.Subdomain, force: true, "test", Ct);
        Assert.Null(await postgres.ScalarAsync<int?>("postgres", $"SELECT 1 FROM pg_database WHERE datname = '{a.DatabaseName}'"));
        Assert.Null(await postgres.ScalarAsync<int?>("postgres", $"SELECT 1 FROM pg_roles WHERE rolname = '{roleA}'"));
        Assert.Contains(await host.Get<TenantEventLog>().ListAsync(a.Subdomain, Ct), e => e.Event == "deleted");
    }

    [Theory]
    [InlineData("ab", "must match")]
    [InlineData("Upper", "must match")]
    [InlineData("www", "reserved")]
    [InlineData("template1", "reserved")]
    [InlineData("postgres", "reserved")]
    [InlineData("x'; DROP TABLE loomworks_tenant; --", "must match")]
    [InlineData("a\"b", "must match")]
    [InlineData("trailing-", "hyphen")]
    public async Task Bad_subdomains_are_refused_naming_the_problem_and_nothing_is_created(string subdomain, string problem)
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_bad_mgmt");
        var e = await Assert.ThrowsAsync<TenantValidationException>(() =>
            host.Get<TenantProvisioner>().CreateAsync(Request(subdomain), Ct));
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.Empty(await host.Get<TenantStore>().ListAsync(Ct));
    }

    [Fact]
    public async Task Oversized_duplicate_and_negative_inputs_are_refused()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_bad2_mgmt");
        var provisioner = host.Get<TenantProvisioner>();
        Assert.Contains("at most 63", (await Assert.ThrowsAsync<TenantValidationException>(() =>
            provisioner.CreateAsync(Request("a" + new string('b', 100)), Ct))).Message, StringComparison.Ordinal);
        Assert.Contains("max_users must not be negative", (await Assert.ThrowsAsync<TenantValidationException>(() =>
            provisioner.CreateAsync(Request("prov-neg", maxUsers: -1), Ct))).Message, StringComparison.Ordinal);
        Assert.Contains("name is 5000", (await Assert.ThrowsAsync<TenantValidationException>(() =>
            provisioner.CreateAsync(Request("prov-long") with { Name = new string('n', 5000) }, Ct))).Message, StringComparison.Ordinal);
        await provisioner.CreateAsync(Request("prov-dup"), Ct);
        var dup = await Assert.ThrowsAsync<TenantValidationException>(() => provisioner.CreateAsync(Request("prov-dup"), Ct));
        Assert.True(dup.Conflict);
        Assert.Single(await host.Get<TenantStore>().ListAsync(Ct));
        await host.Get<TenantLifecycle>().DeleteAsync("prov-dup", force: true, "test", Ct);
    }

    [Fact]
    public async Task An_admin_password_sent_hashed_is_stored_as_sent_and_bad_hashes_are_refused_naming_the_field()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_hash_mgmt");
        var provisioner = host.Get<TenantProvisioner>();
        var hash = Passwords.Hash("sent-hashed");
        var tenant = await provisioner.CreateAsync(Request("prov-hash") with { AdminPassword = null, AdminPasswordHash = hash }, Ct);
        await using (var connection = await host.Get<TenantDataSources>().For(tenant.DatabaseName).OpenConnectionAsync(Ct))
        {
            Assert.True(await TenantSchema.CheckPasswordAsync(connection, "admin", "sent-hashed", Ct));
            await using var stored = new NpgsqlCommand("SELECT password FROM res_users WHERE id = 2", connection);
            Assert.Equal(hash, await stored.ExecuteScalarAsync(Ct));
        }

        var weak = Passwords.Hash("weak", rounds: 1000);
        var refused = new (TenantRequest Request, string Problem)[]
        {
            (Request("prov-hash-both") with { AdminPasswordHash = hash }, "not both"),
            (Request("prov-hash-none") with { AdminPassword = null }, "admin_password is required"),
            (Request("prov-hash-bad") with { AdminPassword = null, AdminPasswordHash = "$pbkdf2-sha512$x'; DROP TABLE res_users; --" },
                "admin_password_hash must be a passlib pbkdf2-sha512 hash"),
            (Request("prov-hash-md5") with { AdminPassword = null, AdminPasswordHash = "$1$abc$def" },
                "admin_password_hash must be a passlib"),
            (Request("prov-hash-big") with { AdminPassword = null, AdminPasswordHash = hash + new string('A', 100_000) },
                "admin_password_hash must be a passlib"),
            (Request("prov-hash-weak") with { AdminPassword = null, AdminPasswordHash = weak }, "1000 rounds; at least 600000"),
        };
        foreach (var (request, problem) in refused)
        {
            var e = await Assert.ThrowsAsync<TenantValidationException>(() => provisioner.CreateAsync(request, Ct));
            Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        }
        Assert.Equal(["prov-hash"], (await host.Get<TenantStore>().ListAsync(Ct)).Select(t => t.Subdomain));
        await host.Get<TenantLifecycle>().DeleteAsync("prov-hash", force: true, "test", Ct);
    }

    /// <summary>The ERP schema plus one migration that a later Loomworks would bring.</summary>
    private sealed class UpgradedSchema : ITenantDatabaseSetup
    {
        private readonly Loomworks.Operations.ErpTenantSetup _current = new();

        public IReadOnlyList<Migration> Migrations =>
            [.. _current.Migrations, new Migration(9_999, "later release", "CREATE TABLE later_release_table (id serial PRIMARY KEY)")];

        public Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct) =>
            _current.CreateAdminUserAsync(tenantDatabase, login, passwordHash, ct);

        public Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct) =>
            _current.CountUsersAsync(tenantDatabase, ct);
    }

    [Fact]
    public async Task Existing_tenants_are_brought_to_a_newer_schema_at_start_and_on_adoption_with_their_role_granted()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_upgrade_mgmt");
        var a = await host.Get<TenantProvisioner>().CreateAsync(Request("prov-upgrade-a"), Ct);
        var b = await host.Get<TenantProvisioner>().CreateAsync(Request("prov-upgrade-b"), Ct);
        const string LaterTable = "SELECT count(*)::int FROM pg_class WHERE relname = 'later_release_table'";
        Assert.Equal(0, await postgres.ScalarAsync<int>(a.DatabaseName, LaterTable));

        var (management, dataSources, options) = (host.Get<ManagementDatabase>(), host.Get<TenantDataSources>(),
            host.Get<TenancyOptions>());
        using (var upgraded = new TenantProvisioner(management, dataSources, new UpgradedSchema(), options))
        {
            Assert.Equal(2, (await upgraded.UpgradeTenantsAsync(Ct)).Upgraded);
            // Every tenant now has this migration set, and the set is recorded: the next start opens no tenant database.
            Assert.Equal((0, 0), await upgraded.UpgradeTenantsAsync(Ct));
        }
        Assert.Equal(1, await postgres.ScalarAsync<int>(a.DatabaseName, LaterTable));
        var role = TenantProvisioner.RoleNameFor(a.DatabaseName);
        Assert.True(await postgres.ScalarAsync<bool>(a.DatabaseName,
            $"SELECT has_table_privilege('{role}', 'later_release_table', 'INSERT')"));

        await postgres.ExecuteAsync(b.DatabaseName,
            "DROP TABLE later_release_table; DELETE FROM loomworks_schema_migrations WHERE version = 9999");
        await dataSources.EvictAsync(b.DatabaseName);
        await new TenantLifecycle(management, dataSources, options, new UpgradedSchema()).AdoptAsync(b.DatabaseName, "test", Ct);
        Assert.Equal(1, await postgres.ScalarAsync<int>(b.DatabaseName, LaterTable));

        await host.Get<TenantLifecycle>().DeleteAsync(a.Subdomain, force: true, "test", Ct);
        await host.Get<TenantLifecycle>().DeleteAsync(b.Subdomain, force: true, "test", Ct);
    }

    [Fact]
    public async Task The_start_up_upgrade_records_its_migration_set_only_once_every_tenant_has_it()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_upmark_mgmt");
        var tenant = await host.Get<TenantProvisioner>().CreateAsync(Request("prov-upmark"), Ct);
        var (management, dataSources, options) = (host.Get<ManagementDatabase>(), host.Get<TenantDataSources>(),
            host.Get<TenancyOptions>());
        using var upgraded = new TenantProvisioner(management, dataSources, new UpgradedSchema(), options);
        var quoted = DatabaseAdmin.QuoteIdentifier(tenant.DatabaseName);

        // A tenant database that cannot be opened keeps the set unrecorded: the next start tries it again.
        await postgres.ExecuteAsync("postgres", $"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false");
        await dataSources.EvictAsync(tenant.DatabaseName);
        Assert.Equal((1, 0), await upgraded.UpgradeTenantsAsync(Ct));
        Assert.Equal((1, 0), await upgraded.UpgradeTenantsAsync(Ct));

        await postgres.ExecuteAsync("postgres", $"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true");
        Assert.Equal((1, 1), await upgraded.UpgradeTenantsAsync(Ct));
        Assert.Equal((0, 0), await upgraded.UpgradeTenantsAsync(Ct));
        await host.Get<TenantLifecycle>().DeleteAsync(tenant.Subdomain, force: true, "test", Ct);
    }

    [Fact]
    public async Task Limits_users_storage_and_ai_operations_are_enforced_with_a_clear_error()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_limits_mgmt");
        var tenant = await host.Get<TenantProvisioner>().CreateAsync(Request("prov-limits", maxUsers: 1, maxStorageGb: 0, maxAi: 2), Ct);
        var limits = host.Get<TenantLimits>();

        var users = await Assert.ThrowsAsync<TenantLimitException>(() => limits.EnsureCanAddUserAsync(tenant, Ct));
        Assert.Contains("max_users is 1", users.Message, StringComparison.Ordinal);
        var storage = await Assert.ThrowsAsync<TenantLimitException>(() => limits.EnsureStorageAvailableAsync(tenant, Ct));
        Assert.Contains("max_storage_gb is 0", storage.Message, StringComparison.Ordinal);

        var raised = await host.Get<TenantLifecycle>().SetLimitsAsync(tenant.Subdomain,
            new TenantLimitsChange(MaxUsers: 2, MaxStorageGb: 1), "test", Ct);
        await limits.EnsureCanAddUserAsync(raised, Ct);
        await limits.EnsureStorageAvailableAsync(raised, Ct);
        await Assert.ThrowsAsync<TenantValidationException>(() =>
            host.Get<TenantLifecycle>().SetLimitsAsync(tenant.Subdomain, new TenantLimitsChange(MaxUsers: -5), "test", Ct));

        var quota = host.Get<AiOperationQuota>();
        Assert.Null(await quota.TryConsumeAsync(tenant, Ct));
        Assert.Null(await quota.TryConsumeAsync(tenant, Ct));
        Assert.Equal(2, (await quota.TryConsumeAsync(tenant, Ct))?.Used);
        Assert.Equal(2, (await quota.UsageAsync(tenant, Ct)).Used);
        await host.Get<TenantLifecycle>().DeleteAsync(tenant.Subdomain, force: true, "test", Ct);
    }

    [Fact]
    public async Task Lifecycle_refuses_wrong_transitions_and_an_expired_subscription_suspends()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "prov_life_mgmt");
        var lifecycle = host.Get<TenantLifecycle>();
        var tenant = await host.Get<TenantProvisioner>().CreateAsync(Request("prov-life") with
            { SubscriptionExpires = DateTimeOffset.UtcNow.AddSeconds(-1) }, Ct);
        var notArchived = await Assert.ThrowsAsync<TenantStateException>(() => lifecycle.DeleteAsync(tenant.Subdomain, false, "test", Ct));
        Assert.Contains("archive it first", notArchived.Message, StringComparison.Ordinal);

        Assert.Contains(tenant.Subdomain, await lifecycle.SuspendExpiredAsync(Ct));
        Assert.Equal(TenantStates.Suspended, (await host.Get<TenantStore>().FindBySubdomainAsync(tenant.Subdomain, Ct))!.State);
        await lifecycle.ArchiveAsync(tenant.Subdomain, "test", Ct);
        await Assert.ThrowsAsync<TenantStateException>(() => lifecycle.SuspendAsync(tenant.Subdomain, "test", Ct));
        await lifecycle.DeleteAsync(tenant.Subdomain, false, "test", Ct);
        Assert.Null(await host.Get<TenantStore>().FindBySubdomainAsync(tenant.Subdomain, Ct));
    }
}
