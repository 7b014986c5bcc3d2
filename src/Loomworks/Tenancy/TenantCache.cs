using System.Collections.Concurrent;

namespace Loomworks.Tenancy;

/// <summary>
/// Cached tenant lookups for routing: hits for <see cref="TenancyOptions.CacheTtl"/>, misses for the short
/// <see cref="TenancyOptions.NegativeCacheTtl"/>. <see cref="TenantChangeListener"/> evicts on every NOTIFY and
/// clears everything after a reconnect; a generation counter keeps a lookup that raced an eviction from storing
/// what it read before the change.
/// </summary>
public sealed class TenantCache(TenantStore store, TenancyOptions options, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Entry> _bySubdomain = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Entry> _byDatabase = new(StringComparer.Ordinal);
    private volatile ListEntry? _all;
    private long _generation;
    private long _lookups;

    private sealed record Entry(Tenant? Tenant, DateTimeOffset Expires);
    private sealed record ListEntry(IReadOnlyList<Tenant> Tenants, DateTimeOffset Expires);

    /// <summary>Lookups that had to ask the management database (for the benchmarks and tests).</summary>
    public long DatabaseLookups => Interlocked.Read(ref _lookups);

    public ValueTask<Tenant?> BySubdomainAsync(string subdomain, CancellationToken ct) =>
        LookupAsync(_bySubdomain, subdomain, store.FindBySubdomainAsync, ct);

    public ValueTask<Tenant?> ByDatabaseAsync(string databaseName, CancellationToken ct) =>
        LookupAsync(_byDatabase, databaseName, store.FindByDatabaseAsync, ct);

    /// <summary>Every tenant (for dbfilter and the single-database rule), cached like single lookups.</summary>
    public async ValueTask<IReadOnlyList<Tenant>> AllAsync(CancellationToken ct)
    {
        if (_all is { } cached && cached.Expires > _time.GetUtcNow())
        {
            return cached.Tenants;
        }
        var generation = Interlocked.Read(ref _generation);
        Interlocked.Increment(ref _lookups);
        var tenants = await store.ListAsync(ct);
        if (Interlocked.Read(ref _generation) == generation)
        {
            _all = new ListEntry(tenants, _time.GetUtcNow() + options.CacheTtl);
        }
        return tenants;
    }

    /// <summary>Forgets what is known of one tenant (by either name) and the full list.</summary>
    public void Evict(string subdomain, string databaseName)
    {
        Interlocked.Increment(ref _generation);
        _bySubdomain.TryRemove(subdomain, out _);
        _byDatabase.TryRemove(databaseName, out _);
        _all = null;
    }

    public void Clear()
    {
        Interlocked.Increment(ref _generation);
        _bySubdomain.Clear();
        _byDatabase.Clear();
        _all = null;
    }

    /// <summary>Forgets everything and loads every tenant afresh (after the listener reconnects).</summary>
    public async Task ReloadAsync(CancellationToken ct)
    {
        Clear();
        var generation = Interlocked.Read(ref _generation);
        var tenants = await store.ListAsync(ct);
        if (Interlocked.Read(ref _generation) != generation)
        {
            return;
        }
        var expires = _time.GetUtcNow() + options.CacheTtl;
        foreach (var tenant in tenants)
        {
            _bySubdomain[tenant.Subdomain] = new Entry(tenant, expires);
            _byDatabase[tenant.DatabaseName] = new Entry(tenant, expires);
        }
        _all = new ListEntry(tenants, expires);
    }

    private async ValueTask<Tenant?> LookupAsync(ConcurrentDictionary<string, Entry> map, string key,
        Func<string, CancellationToken, Task<Tenant?>> load, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        if (map.TryGetValue(key, out var entry) && entry.Expires > now)
        {
            return entry.Tenant;
        }
        var generation = Interlocked.Read(ref _generation);
        Interlocked.Increment(ref _lookups);
        var tenant = await load(key, ct);
        if (Interlocked.Read(ref _generation) == generation)
        {
            map[key] = new Entry(tenant, now + (tenant is null ? options.NegativeCacheTtl : options.CacheTtl));
        }
        return tenant;
    }
}
