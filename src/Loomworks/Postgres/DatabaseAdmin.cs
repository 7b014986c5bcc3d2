using System.Text.RegularExpressions;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>Server-level statements (CREATE DATABASE and friends) that cannot take parameters for their names.</summary>
public static partial class DatabaseAdmin
{
    /// <summary>Names we create ourselves: lower-case letters, digits, underscore and hyphen, starting with a letter.</summary>
    [GeneratedRegex("^[a-z][a-z0-9_-]{0,62}$")]
    private static partial Regex SafeName();

    /// <summary>Quotes an identifier that has already passed <see cref="SafeName"/>; anything else is refused.</summary>
    public static string QuoteIdentifier(string name) =>
        SafeName().IsMatch(name)
            ? "\"" + name + "\""
            : throw new ArgumentException($"'{name}' is not an acceptable database or role name", nameof(name));

    /// <summary>A quoted string for statements that take no parameters (CREATE DATABASE, ALTER … SET) and postgresql.conf.</summary>
    public static string QuoteLiteral(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    public static async Task<bool> DatabaseExistsAsync(NpgsqlConnection connection, string name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection);
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    /// <summary>Creates the database unless it exists; safe when several instances race to create it.</summary>
    public static async Task EnsureDatabaseAsync(PostgresEndpoint endpoint, string name, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(endpoint.ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        if (await DatabaseExistsAsync(connection, name, cancellationToken))
        {
            return;
        }
        try
        {
            await using var create = new NpgsqlCommand(
                $"CREATE DATABASE {QuoteIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Another instance created it between our check and our CREATE.
        }
    }
}
