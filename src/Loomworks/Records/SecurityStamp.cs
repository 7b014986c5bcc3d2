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

    /// <summary>The current stamp as the transaction (or, without one, the statement) sees it.</summary>
    public static async Task<Guid> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var command = new NpgsqlCommand($"SELECT stamp FROM {Table}", connection, transaction);
        return await command.ExecuteScalarAsync(ct) is Guid stamp
            ? stamp
            : throw new InvalidOperationException($"the tenant database has no {Table} row; apply the migrations first");
    }
}
