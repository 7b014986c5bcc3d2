using Npgsql;

namespace Loomworks.Postgres;

/// <summary>One versioned change to a database schema. Versions are unique per database kind and never reused.</summary>
public sealed record Migration(int Version, string Name, string Sql);

/// <summary>
/// Applies migrations in version order, each in its own transaction together with its bookkeeping row, under an
/// advisory lock, so two instances starting at once apply each migration exactly once.
/// </summary>
public static class SchemaMigrator
{
    /// <summary>Arbitrary but fixed: the advisory lock key that serialises migrations of one database.</summary>
    private const long LockKey = 0x4C6F6F6D_4D696772; // "LoomMigr"

    public static async Task<int> ApplyAsync(NpgsqlConnection connection, IEnumerable<Migration> migrations,
        CancellationToken cancellationToken)
    {
        var ordered = migrations.OrderBy(m => m.Version).ToList();
        var duplicate = ordered.GroupBy(m => m.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException(
                $"migration version {duplicate.Key} is used by {string.Join(" and ", duplicate.Select(m => m.Name))}");
        }
        await Execute(connection, "SELECT pg_advisory_lock($1)", cancellationToken, LockKey);
        try
        {
            await Execute(connection, """
                CREATE TABLE IF NOT EXISTS loomworks_schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, cancellationToken);
            var applied = new HashSet<int>();
            await using (var read = new NpgsqlCommand("SELECT version FROM loomworks_schema_migrations", connection))
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    applied.Add(reader.GetInt32(0));
                }
            }
            var count = 0;
            foreach (var migration in ordered.Where(m => !applied.Contains(m.Version)))
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await Execute(connection, migration.Sql, cancellationToken);
                await Execute(connection, "INSERT INTO loomworks_schema_migrations (version, name) VALUES ($1, $2)",
                    cancellationToken, migration.Version, migration.Name);
                await transaction.CommitAsync(cancellationToken);
                count++;
            }
            return count;
        }
        finally
        {
            await Execute(connection, "SELECT pg_advisory_unlock($1)", CancellationToken.None, LockKey);
        }
    }

    /// <summary>The highest migration version applied to the database, or 0 for none.</summary>
    public static async Task<int> CurrentVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT coalesce(max(version), 0) FROM loomworks_schema_migrations", connection);
        try
        {
            return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancellationToken,
        params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
