using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;

namespace Loomworks.Ai;

/// <summary>
/// An authenticated MCP request: the tenant it was routed to, that tenant's database, the key's owner and where
/// attachment files go. The endpoint sets it on the request before the MCP server reads the body.
/// </summary>
public sealed record AgentCaller(Tenant Tenant, PooledDatabase Database, AgentKey Key, AttachmentStorage? Attachments)
{
    /// <summary>
    /// Set when the key was taken from memory: the security stamp it was found valid under, read by the tool's first
    /// statement (reads) or by <see cref="ConfirmKeyAsync"/> (everything else) before anything is done for the caller.
    /// </summary>
    public PendingStampCheck? Pending { get; init; }

    /// <summary>
    /// True when the key needs no confirming or its stamp reads unchanged; false when the stamp moved since the key was
    /// remembered (the key must then be checked afresh). Reads the stamp at most once per request.
    /// </summary>
    public async Task<bool> ConfirmKeyAsync(CancellationToken ct)
    {
        if (Pending is not { Matched: null } check)
        {
            return Pending?.Matched != false;
        }
        await using var connection = await Database.OpenConnectionAsync(ct);
        try
        {
            check.Record(await SecurityStamp.ReadAsync(connection, null, ct));
        }
        catch (SecurityStampChangedException)
        {
            return false;
        }
        return true;
    }

    /// <summary>
    /// The log's agent_id: the client's name and version as it introduced itself (or its User-Agent), and the key's
    /// description, so an operation names both the program and the key that made it.
    /// </summary>
    public static string AgentId(string? clientName, string? clientVersion, string? userAgent, string keyDescription)
    {
        var client = !string.IsNullOrWhiteSpace(clientName)
            ? clientName + (string.IsNullOrWhiteSpace(clientVersion) ? "" : " " + clientVersion)
            : string.IsNullOrWhiteSpace(userAgent) ? "unknown client" : userAgent;
        var id = $"{client} (key: {keyDescription})";
        return id.Length <= 200 ? id : id[..200];
    }
}
