using System.Collections.Concurrent;
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

    /// <summary>Refuses a database action (snapshot, restore) to a user who is not a tenant administrator.</summary>
    public void RequireAdmin(string action)
    {
        if (!IsAdmin)
        {
            throw new ConsoleRefusalException($"Only a tenant administrator may {action}.");
        }
    }
}

/// <summary>
/// Whether each console user is a tenant administrator, remembered with the tenant's security stamp that the page's
/// session check read: while the stamp reads the same no group or right has changed, so a page asks the database
/// nothing more for it (as <see cref="Ai.AgentKeys"/> remembers agents' rights).
/// </summary>
public sealed class ConsoleRights
{
    private const int MaxEntries = 10_000;
    private readonly ConcurrentDictionary<(string Db, long Uid), (Guid Stamp, bool IsAdmin)> _known = new();

    public async Task<ConsoleAccess> LoadAsync(ConsoleUser user, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(user);
        var key = (user.Database.Name, user.Uid);
        // The stamp was read before the rights below: a change committed in between leaves newer rights under an older
        // stamp, which the next page's session check no longer reads, so nothing stale is ever served from here.
        var stamp = user.Session.User.Stamp;
        if (_known.TryGetValue(key, out var known) && known.Stamp == stamp)
        {
            return new ConsoleAccess(user, known.IsAdmin);
        }
        await using var connection = await user.Database.DataSource.OpenConnectionAsync(ct);
        var rights = await AccessRights.LoadAsync(connection, null, user.Uid, ct);
        if (_known.Count >= MaxEntries)
        {
            _known.Clear();
        }
        _known[key] = (stamp, rights.IsAdmin);
        return new ConsoleAccess(user, rights.IsAdmin);
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
