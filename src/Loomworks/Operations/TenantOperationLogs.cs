using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Tenancy;

namespace Loomworks.Operations;

/// <summary>
/// The operation log of a tenant named by its subdomain, as the admin API and the CLI reach it: the tenant's database,
/// or a refusal saying why it cannot be used.
/// </summary>
public sealed class TenantOperationLogs(TenantStore tenants, TenantDataSources dataSources)
{
    /// <summary>The tenant's database; refuses an unknown tenant and one that is neither active nor suspended.</summary>
    public async Task<PooledDatabase> ResolveAsync(string tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        if (tenant.Length is 0 or > 63)
        {
            throw new OperationException(OperationErrorKind.BadInput, "a tenant name must be 1 to 63 characters");
        }
        var found = await tenants.FindBySubdomainAsync(tenant, cancellationToken)
            ?? throw new OperationException(OperationErrorKind.NotFound, $"there is no tenant '{tenant}'");
        if (found.State is not (TenantStates.Active or TenantStates.Suspended))
        {
            throw new OperationException(OperationErrorKind.NotUndoable,
                $"tenant '{tenant}' is {found.State}; its log cannot be used now");
        }
        return dataSources.For(found.DatabaseName);
    }
}

/// <summary>The operation log's inputs as text (query strings, command-line values), parsed or refused alike everywhere.</summary>
public static class OperationInput
{
    public static long WholeNumber(string value, string what) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new OperationException(OperationErrorKind.BadInput,
                $"{what} must be a positive whole number, not '{Shorten(value)}'");

    public static DateTimeOffset? Time(string? value, string what) =>
        value is null ? null
        : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t
        : throw new OperationException(OperationErrorKind.BadInput,
            $"{what} must be a time such as 2025-01-31T14:00:00Z, not '{Shorten(value)}'");

    public static string? Text(string? value, string what) =>
        value is null || value.Length <= 200 ? value
        : throw new OperationException(OperationErrorKind.BadInput, $"{what} is longer than 200 characters");

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";
}
