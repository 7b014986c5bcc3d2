using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// A random value in each tenant database that changes, in the same transaction, with every change to what decides
/// who may do what: logins, passwords, active flags, API keys, group memberships, groups and access rights. A check
/// remembered together with the stamp it was made under stays valid exactly as long as the stamp reads the same, so
/// callers may cache credential checks and access rights and still see a revocation on the very next call. The
/// stamp is random rather than a counter so that a database restored to an earlier point and changed again never
/// shows a value it had before with other contents. Migration 1050 (Records/Migrations) creates it and its triggers.
/// </summary>
public static class SecurityStamp
{
    public const string Table = "loomworks_security_stamp";

    private const string Query = $"SELECT stamp FROM {Table}";

    /// <summary>The current stamp as the transaction (or, without one, the statement) sees it.</summary>
    public static async Task<Guid> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var command = new NpgsqlCommand(Query, connection, transaction);
        return await command.ExecuteScalarAsync(ct) is Guid stamp ? stamp : throw Missing();
    }

    /// <summary>The statement that reads the stamp, for a batch that sends it together with others.</summary>
    internal static NpgsqlBatchCommand BatchCommand() => new(Query);

    /// <summary>Reads the stamp from the current result of a batch (see <see cref="BatchCommand"/>).</summary>
    internal static async Task<Guid> ReadAsync(NpgsqlDataReader reader, CancellationToken ct) =>
        await reader.ReadAsync(ct) ? reader.GetGuid(0) : throw Missing();

    private static InvalidOperationException Missing() =>
        new($"the tenant database has no {Table} row; apply the migrations first");
}

/// <summary>
/// The stamp a call's remembered credential check and access rights were made under, not yet read in the call's
/// transaction: the call's first statement reads it too (one round trip for both), and what the call answers stands
/// only once it is found unchanged. A call whose stamp no longer matches must be made again, checking everything.
/// </summary>
public sealed class PendingStampCheck(Guid expected)
{
    public Guid Expected { get; } = expected;

    /// <summary>Null until the stamp is read in the call's transaction; then whether it was <see cref="Expected"/>.</summary>
    public bool? Matched { get; private set; }

    /// <summary>Records the stamp read; throws <see cref="SecurityStampChangedException"/> when it is not the expected one.</summary>
    internal void Record(Guid read)
    {
        Matched = read == Expected;
        if (Matched == false)
        {
            throw new SecurityStampChangedException();
        }
    }
}

/// <summary>A call ran under remembered checks whose stamp has changed since: its answer is void and it must be made again.</summary>
public sealed class SecurityStampChangedException() : Exception("the security stamp changed since the remembered checks were made");
