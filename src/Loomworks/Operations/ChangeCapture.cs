using System.Text.RegularExpressions;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// Attaches the change-capture triggers to tables of a tenant database: three statement-level triggers per table
/// (insert, update, delete) that each write a statement's changed rows with one INSERT … SELECT over its transition
/// table, and on a table keyed by one column a row trigger for updates that move its key (migration 2010). Changes made
/// outside an operation are captured too, under an id no log row has (a null one before migration 2005): undo and
/// rewind then see them and can name them instead of silently overwriting them.
/// </summary>
public static partial class ChangeCapture
{
    /// <summary>The row-level trigger of the first capture (migration 2001); replaced by <see cref="TriggerNames"/>.</summary>
    public const string TriggerName = "loomworks_capture";

    /// <summary>The capture triggers on every captured table: PostgreSQL allows a transition table only on a
    /// trigger of one event.</summary>
    public static readonly IReadOnlyList<string> TriggerNames = [TriggerName + "_insert", TriggerName + "_update", TriggerName + "_delete"];

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex TableName();

    /// <summary>
    /// The row trigger of a table keyed by one column that captures the deletion of each row whose key an UPDATE moved
    /// (migration 2010); it fires only for an UPDATE that names the key column.
    /// </summary>
    public const string KeyTriggerName = TriggerName + "_update_key";

    /// <summary>Every capture trigger name, current and past, for finding and removing them.</summary>
    private static readonly string[] AllTriggerNames = [TriggerName, .. TriggerNames, KeyTriggerName];

    /// <summary>Installs (or replaces) the capture triggers on each table, with loomworks_install_capture; safe to run again.</summary>
    public static async Task InstallAsync(NpgsqlConnection connection, IEnumerable<string> tableNames, CancellationToken cancellationToken)
    {
        foreach (var table in tableNames.Distinct(StringComparer.Ordinal))
        {
            _ = Quote(table); // refuses a malformed name or one of Loomworks' own tables before the database sees it
            await using var command = new NpgsqlCommand("SELECT loomworks_install_capture($1, '{}')", connection);
            command.Parameters.AddWithValue(table);
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.RaiseException)
            {
                throw new ArgumentException(e.MessageText, nameof(tableNames), e);
            }
        }
    }

    /// <summary>Removes the capture triggers from each table (those without them are left alone).</summary>
    public static async Task RemoveAsync(NpgsqlConnection connection, IEnumerable<string> tableNames,
        CancellationToken cancellationToken)
    {
        foreach (var table in tableNames.Distinct(StringComparer.Ordinal))
        {
            var quoted = Quote(table);
            await using var command = new NpgsqlCommand(
                string.Concat(AllTriggerNames.Select(t => $"DROP TRIGGER IF EXISTS {t} ON {quoted};\n")), connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>The tables of the public schema that carry a capture trigger.</summary>
    public static async Task<IReadOnlyList<string>> CapturedTablesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.tgname = ANY($1) AND n.nspname = 'public' ORDER BY c.relname
            """, connection);
        command.Parameters.AddWithValue(AllTriggerNames);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            tables.Add(reader.GetString(0));
        }
        return tables;
    }

    /// <summary>Validates and quotes a table name; the log's own tables are refused so capture cannot feed itself.</summary>
    internal static string Quote(string table)
    {
        if (!TableName().IsMatch(table))
        {
            throw new ArgumentException($"'{table}' is not an acceptable table name (lower-case letters, digits and _)", nameof(table));
        }
        if (table.StartsWith("loomworks_", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{table}' belongs to Loomworks itself and is not captured", nameof(table));
        }
        return "\"" + table + "\"";
    }
}
