using System.Collections.Concurrent;
using Loomworks.Snapshots;
using Microsoft.Extensions.Logging;

namespace Loomworks.Ai;

/// <summary>The pre-AI snapshot a session's operations carry, or why there is none.</summary>
public sealed record SessionSnapshot(long? SnapshotId, string? NoSnapshotReason);

/// <summary>
/// Agent sessions and their pre-AI snapshots: before a session's first change a <c>pre_ai</c> snapshot of the tenant is
/// taken, and every operation of the session carries its id, so a session whose damage spreads beyond undo can be
/// restored as a whole tenant. The log itself says whether a session has begun (its first operation holds the snapshot
/// id), so every instance agrees; what this instance has seen is remembered to spare the lookup.
/// </summary>
public sealed class AgentSessions(SnapshotService snapshots, ILogger<AgentSessions> logger)
{
    private const int MaxRemembered = 10_000;
    private readonly ConcurrentDictionary<(string Db, string Session), long?> _known = new();

    public static string NewSessionId() => "mcp-" + Guid.NewGuid().ToString("N");

    /// <summary>The snapshot of <paramref name="session"/>: the one its first operation carries, or a new one taken now.</summary>
    public async Task<SessionSnapshot> SnapshotForAsync(AgentCaller caller, string session, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var key = (caller.Database.Name, session);
        if (_known.TryGetValue(key, out var remembered))
        {
            return new SessionSnapshot(remembered, remembered is null ? "no pre-AI snapshot was taken for this session" : null);
        }
        await using (var command = caller.Database.CreateCommand(
            "SELECT snapshot_id FROM loomworks_ai_operation_log WHERE session_id = $1 ORDER BY id LIMIT 1"))
        {
            command.Parameters.AddWithValue(session);
            await using var reader = await command.ExecuteReaderAsync(ct);
            if (await reader.ReadAsync(ct))
            {
                long? found = reader.IsDBNull(0) ? null : reader.GetInt64(0);
                Remember(key, found);
                return new SessionSnapshot(found, found is null ? "no pre-AI snapshot was taken for this session" : null);
            }
        }
        try
        {
            var snapshot = await snapshots.CreateAsync(caller.Tenant.Subdomain, $"pre_ai {session}", SnapshotTypes.PreAi, ct);
            Remember(key, snapshot.Id);
            return new SessionSnapshot(snapshot.Id, null);
        }
        catch (SnapshotException e) when (e.Kind == SnapshotErrorKind.Unavailable)
        {
            // Point-in-time recovery is off here: the session still works, undo still covers it, and its operations say so.
            logger.LogInformation("no pre-AI snapshot for session {Session} of {Tenant}: {Reason}", session, caller.Tenant.Subdomain,
                e.Message);
            Remember(key, null);
            return new SessionSnapshot(null, "no pre-AI snapshot was taken: " + e.Message);
        }
    }

    private void Remember((string, string) key, long? snapshot)
    {
        if (_known.Count >= MaxRemembered)
        {
            _known.Clear();
        }
        _known[key] = snapshot;
    }
}
