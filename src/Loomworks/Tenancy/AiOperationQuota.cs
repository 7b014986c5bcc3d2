using System.Globalization;
using System.Text.Json.Serialization;

namespace Loomworks.Tenancy;

/// <summary>Where a tenant stands against max_ai_operations_daily: operations counted today (UTC), the limit, the reset.</summary>
public sealed record AiQuotaUsage(
    [property: JsonPropertyName("used")] int Used,
    [property: JsonPropertyName("limit")] int Limit,
    [property: JsonPropertyName("resets_at")] DateTimeOffset ResetsAt)
{
    /// <summary>The refusal an agent reads: the count, the limit, when it resets and what to do meanwhile.</summary>
    public string RefusalMessage(string subdomain) =>
        $"tenant '{subdomain}' has used {Used} of its {Limit} AI operations today (max_ai_operations_daily); the count resets at "
        + $"{ResetsAt.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)} (midnight UTC). Reading keeps working; "
        + "ask an administrator to raise the limit, or try again after the reset";
}

/// <summary>
/// The daily quota of AI operations (MCP changes and RPC calls that carry loomworks_agent_id), counted in the management
/// database so that every instance agrees and a restart forgets nothing: one atomic upsert a call, per tenant per UTC day.
/// </summary>
public sealed class AiOperationQuota(ManagementDatabase management)
{
    private const string Today = "(now() AT TIME ZONE 'UTC')::date";

    /// <summary>Counts one operation for today; null when counted, the usage (nothing counted) when the limit is reached.</summary>
    public async Task<AiQuotaUsage?> TryConsumeAsync(Tenant tenant, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        // The count commits without waiting for its WAL flush: a PostgreSQL crash may forget the last fraction of a
        // second of counts (a Loomworks restart forgets nothing, and the limit stays atomic), which is a cheaper risk
        // for a daily budget than a disk flush on every AI call.
        await using var command = management.DataSource.CreateCommand($"""
            WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true))
            INSERT INTO loomworks_tenant_ai_usage AS u (tenant_id, day, operations)
            SELECT $1, {Today}, 1 FROM unflushed WHERE $2 > 0
            ON CONFLICT (tenant_id, day) DO UPDATE SET operations = u.operations + 1 WHERE u.operations < $2
            RETURNING operations
            """);
        command.Parameters.AddWithValue(tenant.Id);
        command.Parameters.AddWithValue(tenant.MaxAiOperationsDaily);
        return await command.ExecuteScalarAsync(ct) is null ? await UsageAsync(tenant, ct) : null;
    }

    /// <summary>Operations counted today (UTC, by PostgreSQL's clock), the tenant's limit and when the count resets.</summary>
    public async Task<AiQuotaUsage> UsageAsync(Tenant tenant, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var command = management.DataSource.CreateCommand($"""
            SELECT coalesce((SELECT operations FROM loomworks_tenant_ai_usage WHERE tenant_id = $1 AND day = {Today}), 0), {Today} + 1
            """);
        command.Parameters.AddWithValue(tenant.Id);
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var resets = reader.GetFieldValue<DateOnly>(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        return new AiQuotaUsage(reader.GetInt32(0), tenant.MaxAiOperationsDaily, new DateTimeOffset(resets));
    }
}
