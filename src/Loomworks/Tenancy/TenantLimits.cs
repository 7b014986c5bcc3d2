using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>A write refused because the tenant is at one of its limits; the message names the limit.</summary>
public sealed class TenantLimitException(string limit, string message) : Exception(message)
{
    public string Limit { get; } = limit;
}

/// <summary>
/// The tenant limits: max_users (counted by the tenant schema) and max_storage_gb (database size plus filestore);
/// max_ai_operations_daily is counted by <see cref="AiOperationQuota"/>.
/// </summary>
public sealed class TenantLimits(
    TenantDataSources dataSources,
    ITenantDatabaseSetup setup,
    TenancyOptions options)
{
    private const long BytesPerGb = 1024L * 1024 * 1024;

    /// <summary>Throws <see cref="TenantLimitException"/> when one more user would exceed max_users.</summary>
    public Task EnsureCanAddUserAsync(Tenant tenant, CancellationToken ct) => EnsureCanAddUsersAsync(tenant, 1, ct);

    /// <summary>Throws <see cref="TenantLimitException"/> when <paramref name="count"/> more users would exceed max_users.</summary>
    public async Task EnsureCanAddUsersAsync(Tenant tenant, int count, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var connection = await dataSources.For(tenant.DatabaseName).OpenConnectionAsync(ct);
        var users = await setup.CountUsersAsync(connection, ct);
        if (users + count > tenant.MaxUsers)
        {
            throw new TenantLimitException("max_users", count == 1
                ? $"tenant '{tenant.Subdomain}' has {users} active users and its limit max_users is {tenant.MaxUsers}; no user can be added"
                : $"tenant '{tenant.Subdomain}' has {users} active users and its limit max_users is {tenant.MaxUsers}; "
                    + $"{count} more cannot be added");
        }
    }

    /// <summary>The tenant's database size plus its filestore, in bytes.</summary>
    public async Task<long> StorageBytesAsync(Tenant tenant, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var command = dataSources.For("postgres").CreateCommand("SELECT pg_database_size($1)");
        command.Parameters.AddWithValue(tenant.DatabaseName);
        var database = (long)(await command.ExecuteScalarAsync(ct))!;
        var filestore = options.FilestoreOf(tenant.DatabaseName);
        var files = Directory.Exists(filestore)
            ? new DirectoryInfo(filestore).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
            : 0;
        return database + files;
    }

    /// <summary>Throws <see cref="TenantLimitException"/> when the tenant's storage has reached max_storage_gb.</summary>
    public async Task EnsureStorageAvailableAsync(Tenant tenant, CancellationToken ct)
    {
        var used = await StorageBytesAsync(tenant, ct);
        if (used >= tenant!.MaxStorageGb * BytesPerGb)
        {
            throw new TenantLimitException("max_storage_gb",
                $"tenant '{tenant.Subdomain}' uses {used / (1024.0 * 1024):F1} MB of storage (database and files) and its limit " +
                $"max_storage_gb is {tenant.MaxStorageGb}; free space or raise the limit before writing");
        }
    }
}
