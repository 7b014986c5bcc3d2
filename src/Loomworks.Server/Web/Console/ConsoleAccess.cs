using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Snapshots;
using Loomworks.Tenancy;

namespace Loomworks.Server.Web.Console;

/// <summary>
/// The signed-in user of a tenant console page and what they may see: a tenant administrator (Settings group) sees
/// every operation and the database actions; anyone else sees their own operations only.
/// </summary>
public sealed record ConsoleAccess(ConsoleUser User, bool IsAdmin)
{
    public Tenant Tenant => User.Tenant;
    public long Uid => User.Uid;

    /// <summary>The user's rights read from the tenant database, as every RPC call of theirs reads them.</summary>
    public static async Task<ConsoleAccess> LoadAsync(ConsoleUser user, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(user);
        await using var connection = await user.Database.DataSource.OpenConnectionAsync(ct);
        var rights = await AccessRights.LoadAsync(connection, null, user.Uid, ct);
        return new ConsoleAccess(user, rights.IsAdmin);
    }

    /// <summary>Refuses a database action (snapshot, restore) to a user who is not a tenant administrator.</summary>
    public void RequireAdmin(string action)
    {
        if (!IsAdmin)
        {
            throw new ConsoleRefusalException($"Only a tenant administrator may {action}.");
        }
    }
}

/// <summary>A console action refused before anything was changed; the message says why.</summary>
public sealed class ConsoleRefusalException(string message) : Exception(message);

/// <summary>The refusals of the features a console page calls, as one sentence for the page.</summary>
public static class ConsoleErrors
{
    /// <summary>True for the refusals a page shows as a message; anything else is a fault and propagates.</summary>
    public static bool IsRefusal(Exception e) =>
        e is ConsoleRefusalException or OperationException or SnapshotException or OdooException or TenantLimitException;

    public static string Describe(Exception e) => e switch
    {
        OdooException o => o.Message,
        _ => e.Message,
    };

    /// <summary>A whole positive number from a form or query field, or a refusal naming the field.</summary>
    public static long Id(string? value, string what) =>
        long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)
            && id > 0
            ? id
            : throw new ConsoleRefusalException($"{what} must be a positive whole number, not '{Shorten(value ?? "")}'.");

    /// <summary>A text field of at most <paramref name="max"/> characters without control characters, trimmed; empty is null.</summary>
    public static string? Text(string? value, string what, int max = 200)
    {
        value = value?.Trim();
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        if (value.Length > max)
        {
            throw new ConsoleRefusalException($"{what} has {value.Length} characters; at most {max} are accepted.");
        }
        return value.Any(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t'))
            ? throw new ConsoleRefusalException($"{what} contains control characters.")
            : value;
    }

    public static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";
}
