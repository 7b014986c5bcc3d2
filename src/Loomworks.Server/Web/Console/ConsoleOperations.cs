using System.Globalization;
using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Snapshots;
using Loomworks.Tenancy;

namespace Loomworks.Server.Web.Console;

/// <summary>Usage against the tenant's limits, its last snapshot and whether WAL archiving keeps up.</summary>
public sealed record ConsoleOverview(
    int Users,
    int MaxUsers,
    long StorageBytes,
    int MaxStorageGb,
    int AiOperationsCounted,
    long AgentOperationsLogged,
    int MaxAiOperationsDaily,
    Snapshot? LastSnapshot,
    ArchivingState Archiving);

/// <summary>pg_stat_archiver read against the segment being written: current, behind, failing, or off.</summary>
public sealed record ArchivingState(bool Current, string Summary, string? LastArchivedWal, DateTimeOffset? LastArchivedAt,
    string? LastFailedWal, DateTimeOffset? LastFailedAt);

/// <summary>An operation with its row changes, as its page shows it.</summary>
public sealed record OperationView(OperationRecord Operation, IReadOnlyList<RowChange> Changes, long ChangeTotal);

/// <summary>
/// The overview and the operations timeline of the console: reads through <see cref="OperationTimeline"/> and
/// <see cref="OperationLog"/>, undo through the log model's action_undo and action_undo_session, the very calls an RPC
/// client makes (the user's rights, the undo logged as an operation of theirs).
/// </summary>
public sealed class ConsoleOperations(
    RpcDispatcher dispatcher,
    TenantLimits limits,
    AiOperationQuota quota,
    ITenantDatabaseSetup setup,
    SnapshotsFeature snapshots,
    ManagementDatabase management)
{
    /// <summary>The context every change made from the console carries: its operations say where they came from.</summary>
    public static Dictionary<string, object?> Context() =>
        new(StringComparer.Ordinal) { [OperationInfo.ToolKey] = "console" };

    public async Task<ConsoleOverview> OverviewAsync(ConsoleAccess access, CancellationToken ct)
    {
        var tenant = access.Tenant;
        int users;
        await using (var connection = await access.User.Database.DataSource.OpenConnectionAsync(ct))
        {
            users = await setup.CountUsersAsync(connection, ct);
        }
        var storage = await limits.StorageBytesAsync(tenant, ct);
        var counted = (await quota.UsageAsync(tenant, ct)).Used;
        var today = new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero);
        var logged = await new OperationTimeline(access.User.Database.DataSource).AgentOperationsSinceAsync(today, ct);
        Snapshot? last = null;
        if (snapshots.BackRest.IsConfigured)
        {
            last = (await snapshots.Snapshots.ListAsync(tenant.Subdomain, ct)).LastOrDefault(s => s.State is "ready" or "pending");
        }
        return new ConsoleOverview(users, tenant.MaxUsers, storage, tenant.MaxStorageGb, counted, logged, tenant.MaxAiOperationsDaily,
            last, await ArchivingAsync(ct));
    }

    /// <summary>
    /// Current when the newest archived segment is the one before the segment being written (or that one) and no
    /// failure came after it; the archiver's own counters, so it holds for every tenant of the server alike.
    /// </summary>
    private async Task<ArchivingState> ArchivingAsync(CancellationToken ct)
    {
        if (!snapshots.BackRest.IsConfigured)
        {
            return new ArchivingState(false, PgBackRest.IsInstalled
                ? "pgBackRest is not set up for this server: snapshots and point-in-time restore are off"
                : "pgBackRest is not installed: snapshots and point-in-time restore are off", null, null, null, null);
        }
        await using var command = management.DataSource.CreateCommand("""
            SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,
                   pg_walfile_name(pg_current_wal_lsn()), current_setting('archive_mode')
            FROM pg_stat_archiver
            """);
        await using var r = await command.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        string? archived = r.IsDBNull(0) ? null : r.GetString(0);
        DateTimeOffset? archivedAt = r.IsDBNull(1) ? null : r.GetFieldValue<DateTimeOffset>(1);
        string? failed = r.IsDBNull(2) ? null : r.GetString(2);
        DateTimeOffset? failedAt = r.IsDBNull(3) ? null : r.GetFieldValue<DateTimeOffset>(3);
        var writing = r.GetString(4);
        if (r.GetString(5) == "off")
        {
            return new ArchivingState(false, "archive_mode is off on this server", archived, archivedAt, failed, failedAt);
        }
        var failing = failedAt is { } f && (archivedAt is null || f > archivedAt);
        var behind = archived is null ? -1 : SegmentDistance(archived, writing);
        var current = !failing && behind is >= 0 and <= 1;
        var summary = failing ? $"archiving is failing: segment {failed} could not be archived"
            : archived is null ? "no WAL segment has been archived yet"
            : current ? "WAL archiving is current"
            : $"WAL archiving is {behind} segments behind the segment being written";
        return new ArchivingState(current, summary, archived, archivedAt, failed, failedAt);
    }

    /// <summary>How many segments lie between two WAL file names of one timeline (negative across timelines).</summary>
    private static long SegmentDistance(string archived, string writing)
    {
        // The newest archived file may be a backup's history file (segment name, offset, ".backup"): its segment counts.
        archived = archived.Length > 24 && archived[24] == '.' ? archived[..24] : archived;
        if (archived.Length != 24 || writing.Length != 24 || !string.Equals(archived[..8], writing[..8], StringComparison.Ordinal))
        {
            return -1;
        }
        static long Number(string name) =>
            long.Parse(name[8..16], NumberStyles.HexNumber, CultureInfo.InvariantCulture) * 0x100000000L
            + long.Parse(name[16..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return Number(writing) - Number(archived);
    }

    /// <summary>A page of the timeline; a user who is not an administrator sees only their own operations.</summary>
    public Task<TimelinePage> PageAsync(ConsoleAccess access, TimelineQuery query, CancellationToken ct) =>
        new OperationTimeline(access.User.Database.DataSource).PageAsync(
            access.IsAdmin ? query : query with { UserId = access.Uid }, ct);

    /// <summary>
    /// One operation and its row changes; another user's operation is answered as missing to a user who is not an
    /// administrator, the same answer as an id the log does not have.
    /// </summary>
    public async Task<OperationView> OperationAsync(ConsoleAccess access, long id, CancellationToken ct)
    {
        var database = access.User.Database.DataSource;
        var operation = await new OperationLog(database).FindAsync(id, ct);
        if (operation is null || (!access.IsAdmin && operation.UserId != access.Uid))
        {
            throw new ConsoleRefusalException($"There is no operation {id} in this tenant's log.");
        }
        var (changes, total) = await new OperationTimeline(database).ChangesAsync(id, ct);
        return new OperationView(operation, changes, total);
    }

    /// <summary>Undoes one operation (an undo operation: redoes what it undid); returns the id of the undo operation.</summary>
    public async Task<long> UndoAsync(ConsoleAccess access, long id, bool force, CancellationToken ct)
    {
        await OperationAsync(access, id, ct);
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal) { ["force"] = force, ["context"] = Context() };
        var result = await dispatcher.CallAsync(access.User.Database, access.Uid, OperationLogModel.Definition.Name, "action_undo",
            [new List<object?> { id }], kwargs, ct);
        return result is IList<object?> { Count: > 0 } ids && ids[0] is long undoId ? undoId : 0;
    }

    /// <summary>Undoes every operation of a session still in effect, newest first; returns how many were undone.</summary>
    public async Task<int> UndoSessionAsync(ConsoleAccess access, string session, bool force, CancellationToken ct)
    {
        var timeline = new OperationTimeline(access.User.Database.DataSource);
        if (!access.IsAdmin && !await timeline.SessionIsOnlyUsersAsync(session, access.Uid, ct))
        {
            throw new ConsoleRefusalException($"Session '{ConsoleErrors.Shorten(session)}' holds operations of other users; " +
                "only a tenant administrator may undo it.");
        }
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal) { ["force"] = force, ["context"] = Context() };
        var result = await dispatcher.CallAsync(access.User.Database, access.Uid, OperationLogModel.Definition.Name, "action_undo_session",
            [session], kwargs, ct);
        return result is IList<object?> undone ? undone.Count : 0;
    }
}
