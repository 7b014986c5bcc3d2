using System.Collections.Concurrent;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Tenancy;

namespace Loomworks.Server.Rpc;

/// <summary>
/// Tenant limits on RPC writes: max_users when active users are created, max_storage_gb on every write. The storage
/// used is measured at most once per <see cref="StorageRecheck"/> per tenant, so a write does not pay for a size query;
/// the limit itself is read from the cached tenant each time, so a raised or lowered limit applies at once.
/// </summary>
public sealed class TenantLimitsWriteGuard(TenantCache tenants, TenantLimits limits, TimeProvider? time = null) : IRpcWriteGuard
{
    public static readonly TimeSpan StorageRecheck = TimeSpan.FromSeconds(30);
    private const long BytesPerGb = 1024L * 1024 * 1024;
    private static readonly HashSet<string> Writes = new(StringComparer.Ordinal)
    {
        "create", "write", "unlink", "copy", "toggle_active", "action_archive", "action_unarchive",
    };

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, (long Bytes, DateTimeOffset Measured)> _storage = new(StringComparer.Ordinal);

    public async Task CheckAsync(RpcDatabase database, string model, string method, IList<object?> args, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(args);
        if (!Writes.Contains(method) || await tenants.ByDatabaseAsync(database.Name, ct) is not { } tenant)
        {
            return;
        }
        try
        {
            if (method != "unlink")
            {
                await CheckStorageAsync(tenant, ct);
            }
            if (model == "res.users" && method == "create" && args.Count > 0 && ActiveUsers(args[0]) is var count and > 0)
            {
                await limits.EnsureCanAddUsersAsync(tenant, count, ct);
            }
        }
        catch (TenantLimitException e)
        {
            throw OdooException.User(e.Message);
        }
    }

    private async Task CheckStorageAsync(Tenant tenant, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        if (!_storage.TryGetValue(tenant.DatabaseName, out var known) || now - known.Measured > StorageRecheck)
        {
            known = (await limits.StorageBytesAsync(tenant, ct), now);
            _storage[tenant.DatabaseName] = known;
        }
        if (known.Bytes >= tenant.MaxStorageGb * BytesPerGb)
        {
            // The exact message (and a fresh measure) comes from Tenancy; only tenants at their quota pay for it.
            _storage.TryRemove(tenant.DatabaseName, out _);
            await limits.EnsureStorageAvailableAsync(tenant, ct);
        }
    }

    /// <summary>How many active users a create's values make (a dict or a list of dicts; active defaults to true).</summary>
    private static int ActiveUsers(object? values) => values switch
    {
        IDictionary<string, object?> one => IsActive(one) ? 1 : 0,
        IList<object?> many => many.Count(v => v is IDictionary<string, object?> d && IsActive(d)),
        _ => 0,
    };

    private static bool IsActive(IDictionary<string, object?> values) =>
        !values.TryGetValue("active", out var active) || Values.Truthy(active);
}
