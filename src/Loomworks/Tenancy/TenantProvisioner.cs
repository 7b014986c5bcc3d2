using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Loomworks.Postgres;
using Loomworks.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>The persisted steps of provisioning, in order.</summary>
public static class ProvisioningSteps
{
    public const string Registered = "registered";
    public const string TemplateReady = "template_ready";
    public const string DatabaseCreated = "database_created";
    public const string Migrated = "migrated";
    public const string RoleCreated = "role_created";
    public const string AdminCreated = "admin_created";
    public const string Active = "active";

    public static readonly IReadOnlyList<string> All =
        [Registered, TemplateReady, DatabaseCreated, Migrated, RoleCreated, AdminCreated, Active];
}

/// <summary>
/// Creates tenants: a row in provisioning state, <c>CREATE DATABASE … TEMPLATE</c> of a template kept at the latest
/// tenant schema, newer migrations, a login role that alone may CONNECT, the first administrator, then active.
/// Each step is persisted in <c>loomworks_tenant_job</c>; a job whose process died (its advisory lock is free) is
/// finished by <see cref="RecoverAsync"/> when the administrator exists, and rolled back otherwise (the password
/// is never stored, so an earlier step cannot be resumed).
/// </summary>
public sealed class TenantProvisioner(
    ManagementDatabase management,
    TenantDataSources dataSources,
    ITenantDatabaseSetup setup,
    TenancyOptions options,
    ILogger<TenantProvisioner>? logger = null) : IDisposable
{
    /// <summary>Advisory lock class of provisioning jobs: held by the process running the job.</summary>
    private const int JobLockClass = 0x4C57_4A42; // "LWJB"
    /// <summary>Shared while a database is copied from the template, exclusive while the template is migrated.</summary>
    private const long TemplateLockKey = 0x4C6F6F6D_54706C74; // "LoomTplt"
    private const string ServerDatabase = "postgres";

    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;
    private readonly SemaphoreSlim _templateGate = new(1, 1);
    private volatile bool _templateReady;

    public string TemplateDatabase => options.TemplateDatabase;

    public void Dispose() => _templateGate.Dispose();

    /// <summary>The login role of a tenant database: readable, unique (a hash of the database) and within 63 bytes.</summary>
    public static string RoleNameFor(string databaseName)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(databaseName)))[..8];
        var stem = databaseName.Length > 40 ? databaseName[..40] : databaseName;
        return $"lwt_{stem}_{hash}";
    }

    public async Task<Tenant> CreateAsync(TenantRequest request, CancellationToken ct, string actor = "api")
    {
        TenantRules.Validate(request);
        // The administrator's 600,000-round PBKDF2 takes longer than all the database steps together, so it runs beside
        // them instead of before or after; a caller that sends a ready hash skips it.
        var adminPasswordHash = request.AdminPasswordHash is { } ready
            ? Task.FromResult(ready)
            : Task.Run(() => Passwords.Hash(request.AdminPassword!), CancellationToken.None);
        var database = request.Subdomain;
        var role = RoleNameFor(database);
        await using (var server = await dataSources.For(ServerDatabase).OpenConnectionAsync(ct))
        {
            if (await DatabaseAdmin.DatabaseExistsAsync(server, database, ct) && await FindTenantIdAsync(request.Subdomain, ct) is null)
            {
                throw new TenantValidationException(
                    $"a database named '{database}' already exists on the server; choose another subdomain", conflict: true);
            }
        }

        // This connection holds the job's advisory lock until the job ends: a crash releases it, which is how
        // recovery tells a dead job from one still running in another process.
        await using var jobConnection = await management.DataSource.OpenConnectionAsync(ct);
        long tenantId, jobId;
        await using (var transaction = await jobConnection.BeginTransactionAsync(ct))
        {
            try
            {
                var row = new NewTenantRow(request.Name, request.Subdomain, database, TenantStates.Provisioning, role)
                {
                    Tier = request.Tier,
                    MaxUsers = request.MaxUsers,
                    MaxStorageGb = request.MaxStorageGb,
                    MaxAiOperationsDaily = request.MaxAiOperationsDaily,
                    SubscriptionExpires = request.SubscriptionExpires,
                };
                tenantId = (await TenantLifecycle.InsertAsync(jobConnection, transaction, row, $"tier {request.Tier}", actor, ct))!.Value;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw new TenantValidationException($"subdomain '{request.Subdomain}' is already taken", conflict: true);
            }
            await using (var jobInsert = new NpgsqlCommand("""
                INSERT INTO loomworks_tenant_job (tenant_id, subdomain, database_name, role_name, kind, step)
                VALUES ($1, $2, $3, $4, 'provision', $5) RETURNING id
                """, jobConnection, transaction))
            {
                jobInsert.Parameters.AddWithValue(tenantId);
                jobInsert.Parameters.AddWithValue(request.Subdomain);
                jobInsert.Parameters.AddWithValue(database);
                jobInsert.Parameters.AddWithValue(role);
                jobInsert.Parameters.AddWithValue(ProvisioningSteps.Registered);
                jobId = (long)(await jobInsert.ExecuteScalarAsync(ct))!;
            }
            await LockJobAsync(jobConnection, jobId, wait: true, ct);
            await transaction.CommitAsync(ct);
        }
        var job = new Job(jobId, tenantId, request.Subdomain, database, role, ProvisioningSteps.Registered);
        CrashPoint.Reached("provision:" + ProvisioningSteps.Registered);
        try
        {
            // Every step before the last leads recovery to roll back, and the final commit on this connection flushes the
            // WAL of the earlier ones with it, so the step records need not each wait for the disk.
            await ExecuteAsync(jobConnection, "SET synchronous_commit = off", ct);
            await EnsureTemplateAsync(ct);
            await StepAsync(jobConnection, job, ProvisioningSteps.TemplateReady, ct);

            // The login role does not depend on the copy, so it is made while the copy runs; both are awaited before
            // anything else, so a rollback never races a half-made role.
            await Task.WhenAll(EnsureLoginRoleAsync(dataSources, role, ct), CreateDatabaseFromTemplateAsync(database, ct));
            await StepAsync(jobConnection, job, ProvisioningSteps.DatabaseCreated, ct);

            await using var tenantConnection = await dataSources.For(database).OpenConnectionAsync(ct);
            await SchemaMigrator.ApplyAsync(tenantConnection, setup.Migrations, ct);
            await StepAsync(jobConnection, job, ProvisioningSteps.Migrated, ct);

            await Task.WhenAll(GrantConnectAsync(dataSources, database, role, ct), GrantTablesAsync(tenantConnection, role, ct));
            await StepAsync(jobConnection, job, ProvisioningSteps.RoleCreated, ct);

            await setup.CreateAdminUserAsync(tenantConnection, request.AdminLogin, await adminPasswordHash, ct);
            await StepAsync(jobConnection, job, ProvisioningSteps.AdminCreated, ct);

            await FinishAsync(jobConnection, job, actor, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || ct.IsCancellationRequested)
        {
            _logger.LogWarning(e, "provisioning of tenant {Subdomain} failed at step {Step}; rolling back", job.Subdomain, job.Step);
            await RollBackAsync(jobConnection, job, "failed", e.Message, actor, CancellationToken.None);
            throw;
        }
        finally
        {
            await UnlockJobAsync(jobConnection, jobId);
        }
        return (await new TenantStore(management).FindBySubdomainAsync(request.Subdomain, ct))!;
    }

    /// <summary>
    /// Finishes or rolls back the jobs of processes that died mid-way; jobs still running elsewhere are left alone.
    /// Returns how many jobs were settled.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken ct)
    {
        var jobs = new List<Job>();
        await using (var command = management.DataSource.CreateCommand("""
            SELECT id, tenant_id, subdomain, database_name, role_name, step FROM loomworks_tenant_job
            WHERE state = 'running' ORDER BY id
            """))
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                jobs.Add(new Job(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetString(2),
                    reader.GetString(3), reader.GetString(4), reader.GetString(5)));
            }
        }
        var settled = 0;
        foreach (var job in jobs)
        {
            await using var connection = await management.DataSource.OpenConnectionAsync(ct);
            if (!await LockJobAsync(connection, job.Id, wait: false, ct))
            {
                continue;
            }
            try
            {
                if (await JobStateAsync(connection, job.Id, ct) != "running")
                {
                    continue;
                }
                if (job.Step is ProvisioningSteps.AdminCreated or ProvisioningSteps.Active)
                {
                    _logger.LogInformation("finishing the provisioning of tenant {Subdomain} interrupted after {Step}",
                        job.Subdomain, job.Step);
                    await FinishAsync(connection, job, "recovery", ct);
                }
                else
                {
                    _logger.LogWarning("rolling back the provisioning of tenant {Subdomain} interrupted after {Step}",
                        job.Subdomain, job.Step);
                    await RollBackAsync(connection, job, "rolled_back", $"interrupted after step {job.Step}", "recovery", ct);
                }
                settled++;
            }
            finally
            {
                await UnlockJobAsync(connection, job.Id);
            }
        }
        return settled;
    }

    /// <summary>Creates the template database if missing and brings it to the latest tenant schema.</summary>
    public async Task EnsureTemplateAsync(CancellationToken ct)
    {
        if (_templateReady)
        {
            return;
        }
        await _templateGate.WaitAsync(ct);
        try
        {
            if (_templateReady)
            {
                return;
            }
            await using var server = await dataSources.For(ServerDatabase).OpenConnectionAsync(ct);
            await ExecuteAsync(server, "SELECT pg_advisory_lock($1)", ct, TemplateLockKey);
            try
            {
                var template = DatabaseAdmin.QuoteIdentifier(TemplateDatabase);
                if (!await DatabaseAdmin.DatabaseExistsAsync(server, TemplateDatabase, ct))
                {
                    await ExecuteAsync(server, $"CREATE DATABASE {template} TEMPLATE template0 ENCODING 'UTF8'", ct);
                    await ExecuteAsync(server, $"REVOKE CONNECT, TEMPORARY ON DATABASE {template} FROM PUBLIC", ct);
                }
                await using (var connection = await dataSources.For(TemplateDatabase).OpenConnectionAsync(ct))
                {
                    await SchemaMigrator.ApplyAsync(connection, setup.Migrations, ct);
                }
                // CREATE DATABASE … TEMPLATE refuses while anyone is connected to the template.
                await dataSources.EvictAsync(TemplateDatabase);
            }
            finally
            {
                await ExecuteAsync(server, "SELECT pg_advisory_unlock($1)", CancellationToken.None, TemplateLockKey);
            }
            _templateReady = true;
        }
        finally
        {
            _templateGate.Release();
        }
    }

    /// <summary>
    /// Brings every tenant database that exists (active, suspended or archived) to the latest tenant schema: a
    /// Loomworks upgrade adds migrations that only new tenants would otherwise get. Tables that a migration adds are
    /// granted to the tenant's role. A tenant that cannot be upgraded is logged and left as it is. Once every tenant
    /// has the current migration set, that set is recorded in <c>loomworks_settings</c> and later starts with the same
    /// set open no tenant database at all (with a thousand tenants that is half a minute per start); databases that
    /// join afterwards are settled on their own: new ones come from the migrated template and restored or duplicated
    /// ones are upgraded when adopted. Returns how many databases were checked and how many had migrations applied.
    /// </summary>
    public async Task<(int Checked, int Upgraded)> UpgradeTenantsAsync(CancellationToken ct)
    {
        var migrationSet = string.Join(',', setup.Migrations.Select(m => m.Version).Order());
        if (await management.ReadSettingAsync(UpgradedSetKey, ct) == migrationSet)
        {
            return (0, 0);
        }
        var (checkedCount, upgraded, complete) = (0, 0, true);
        foreach (var tenant in await new TenantStore(management).ListAsync(ct))
        {
            // A database still being provisioned or restored is settled by its own job, which upgrades it on adoption.
            if (tenant.State is not (TenantStates.Active or TenantStates.Suspended or TenantStates.Archived))
            {
                complete = false;
                continue;
            }
            try
            {
                checkedCount++;
                await using var connection = await dataSources.For(tenant.DatabaseName).OpenConnectionAsync(ct);
                if (await UpgradeSchemaAsync(connection, setup, ct) == 0)
                {
                    continue;
                }
                await GrantTablesAsync(connection, RoleNameFor(tenant.DatabaseName), ct);
                upgraded++;
                _logger.LogInformation("tenant {Subdomain}: database brought to the latest tenant schema", tenant.Subdomain);
            }
            catch (NpgsqlException e)
            {
                complete = false;
                _logger.LogError("tenant {Subdomain}: its database could not be brought to the latest schema: {Message}",
                    tenant.Subdomain, e.Message);
            }
        }
        if (complete)
        {
            await management.WriteSettingAsync(UpgradedSetKey, migrationSet, ct);
        }
        return (checkedCount, upgraded);
    }

    /// <summary>The loomworks_settings key holding the tenant migration set every tenant database was last brought to.</summary>
    internal const string UpgradedSetKey = "tenant_migrations_applied";

    /// <summary>
    /// Applies the tenant migrations a database lacks, when it has the tenant schema's first one: a database that
    /// does not (a foreign or hand-made one that was restored) is left as it is rather than half-rebuilt.
    /// </summary>
    internal static async Task<int> UpgradeSchemaAsync(NpgsqlConnection tenant, ITenantDatabaseSetup setup, CancellationToken ct)
    {
        if (setup.Migrations.Count == 0)
        {
            return 0;
        }
        await using var based = new NpgsqlCommand(
            "SELECT 1 FROM pg_class WHERE relname = 'loomworks_schema_migrations' AND relnamespace = 'public'::regnamespace", tenant);
        if (await based.ExecuteScalarAsync(ct) is null)
        {
            return 0;
        }
        await using var first = new NpgsqlCommand("SELECT 1 FROM loomworks_schema_migrations WHERE version = $1", tenant);
        first.Parameters.AddWithValue(setup.Migrations.Min(m => m.Version));
        return await first.ExecuteScalarAsync(ct) is null ? 0 : await SchemaMigrator.ApplyAsync(tenant, setup.Migrations, ct);
    }

    private async Task CreateDatabaseFromTemplateAsync(string database, CancellationToken ct)
    {
        await using var server = await dataSources.For(ServerDatabase).OpenConnectionAsync(ct);
        if (await DatabaseAdmin.DatabaseExistsAsync(server, database, ct))
        {
            return;
        }
        await ExecuteAsync(server, "SELECT pg_advisory_lock_shared($1)", ct, TemplateLockKey);
        try
        {
            await ExecuteAsync(server,
                $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(database)} TEMPLATE {DatabaseAdmin.QuoteIdentifier(TemplateDatabase)}",
                ct);
        }
        finally
        {
            await ExecuteAsync(server, "SELECT pg_advisory_unlock_shared($1)", CancellationToken.None, TemplateLockKey);
        }
    }

    /// <summary>
    /// Makes <paramref name="role"/> the one login that may CONNECT to <paramref name="database"/> (PUBLIC revoked)
    /// and gives it the schema's tables; idempotent, so it serves provisioning and databases adopted after a restore.
    /// </summary>
    internal static async Task GrantRoleAsync(TenantDataSources dataSources, string database, string role, CancellationToken ct)
    {
        await EnsureLoginRoleAsync(dataSources, role, ct);
        await GrantConnectAsync(dataSources, database, role, ct);
        await using var tenant = await dataSources.For(database).OpenConnectionAsync(ct);
        await GrantTablesAsync(tenant, role, ct);
    }

    private static async Task EnsureLoginRoleAsync(TenantDataSources dataSources, string role, CancellationToken ct)
    {
        await using var server = await dataSources.For(ServerDatabase).OpenConnectionAsync(ct);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", server);
        exists.Parameters.AddWithValue(role);
        if (await exists.ExecuteScalarAsync(ct) is null)
        {
            await ExecuteAsync(server, $"CREATE ROLE {DatabaseAdmin.QuoteIdentifier(role)} LOGIN NOINHERIT", ct);
        }
    }

    private static async Task GrantConnectAsync(TenantDataSources dataSources, string database, string role, CancellationToken ct)
    {
        var quotedDatabase = DatabaseAdmin.QuoteIdentifier(database);
        await using var server = await dataSources.For(ServerDatabase).OpenConnectionAsync(ct);
        await ExecuteAsync(server, $"""
            REVOKE CONNECT, TEMPORARY ON DATABASE {quotedDatabase} FROM PUBLIC;
            GRANT CONNECT, TEMPORARY ON DATABASE {quotedDatabase} TO {DatabaseAdmin.QuoteIdentifier(role)}
            """, ct);
    }

    private static Task GrantTablesAsync(NpgsqlConnection tenant, string role, CancellationToken ct)
    {
        var quotedRole = DatabaseAdmin.QuoteIdentifier(role);
        return ExecuteAsync(tenant, $"""
            GRANT USAGE, CREATE ON SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL TABLES IN SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {quotedRole}
            """, ct);
    }

    private static async Task StepAsync(NpgsqlConnection jobConnection, Job job, string step, CancellationToken ct)
    {
        await ExecuteAsync(jobConnection, "UPDATE loomworks_tenant_job SET step = $2, updated_at = now() WHERE id = $1", ct, job.Id, step);
        job.Step = step;
        CrashPoint.Reached("provision:" + step);
    }

    private static async Task FinishAsync(NpgsqlConnection connection, Job job, string actor, CancellationToken ct)
    {
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await ExecuteAsync(connection, "SET LOCAL synchronous_commit = on", ct);
        await TenantLifecycle.SetStateAsync(connection, transaction, job.TenantId ?? 0L, TenantStates.Active, TenantStates.Provisioning,
            "active", "provisioned", actor, ct);
        await ExecuteAsync(connection, "UPDATE loomworks_tenant_job SET step = $2, state = 'done', updated_at = now() WHERE id = $1",
            ct, job.Id, ProvisioningSteps.Active);
        await transaction.CommitAsync(ct);
        job.Step = ProvisioningSteps.Active;
    }

    private async Task RollBackAsync(NpgsqlConnection connection, Job job, string finalState, string reason, string actor,
        CancellationToken ct)
    {
        await dataSources.EvictAsync(job.Database);
        var databases = new DatabaseOperations(dataSources.For(ServerDatabase));
        await databases.DropAsync(job.Database, ct);
        await databases.DropRoleAsync(job.Role, ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await ExecuteAsync(connection, "SET LOCAL synchronous_commit = on", ct);
        await TenantLifecycle.RemoveAsync(connection, transaction, job.TenantId ?? 0L, TenantStates.Provisioning,
            "provisioning_rolled_back", reason, actor, ct);
        await ExecuteAsync(connection, "UPDATE loomworks_tenant_job SET state = $2, error = $3, updated_at = now() WHERE id = $1",
            ct, job.Id, finalState, reason);
        await transaction.CommitAsync(ct);
    }

    private async Task<long?> FindTenantIdAsync(string subdomain, CancellationToken ct)
    {
        await using var command = management.DataSource.CreateCommand("SELECT id FROM loomworks_tenant WHERE subdomain = $1");
        command.Parameters.AddWithValue(subdomain);
        return await command.ExecuteScalarAsync(ct) as long?;
    }

    private static async Task<string?> JobStateAsync(NpgsqlConnection connection, long jobId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT state FROM loomworks_tenant_job WHERE id = $1", connection);
        command.Parameters.AddWithValue(jobId);
        return await command.ExecuteScalarAsync(ct) as string;
    }

    private static async Task<bool> LockJobAsync(NpgsqlConnection connection, long jobId, bool wait, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            wait ? "SELECT pg_advisory_lock($1, $2)::text" : "SELECT pg_try_advisory_lock($1, $2)::text", connection);
        command.Parameters.AddWithValue(JobLockClass);
        command.Parameters.AddWithValue(unchecked((int)jobId));
        var result = await command.ExecuteScalarAsync(ct) as string;
        return wait || result == "true";
    }

    private static async Task UnlockJobAsync(NpgsqlConnection connection, long jobId)
    {
        try
        {
            await ExecuteAsync(connection, "SELECT pg_advisory_unlock($1, $2)", CancellationToken.None, JobLockClass,
                unchecked((int)jobId));
        }
        catch (NpgsqlException)
        {
            // The connection is gone, and its session locks with it.
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        await command.ExecuteNonQueryAsync(ct);
    }

    private sealed class Job(long id, long? tenantId, string subdomain, string database, string role, string step)
    {
        public long Id { get; } = id;
        public long? TenantId { get; } = tenantId;
        public string Subdomain { get; } = subdomain;
        public string Database { get; } = database;
        public string Role { get; } = role;
        public string Step { get; set; } = step;
    }
}
