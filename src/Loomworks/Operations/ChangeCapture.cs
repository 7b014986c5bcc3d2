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

    /// <summary>The three CREATE TRIGGER statements for a quoted table and its key and ignored columns as SQL literals.</summary>
    internal static IEnumerable<string> CreateStatements(string quotedTable, string keys, string ignored) =>
    [
        $"CREATE OR REPLACE TRIGGER {TriggerNames[0]} AFTER INSERT ON {quotedTable} REFERENCING NEW TABLE AS loomworks_new_rows " +
            $"FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement({keys}, {ignored});\n",
        $"CREATE OR REPLACE TRIGGER {TriggerNames[1]} AFTER UPDATE ON {quotedTable} " +
            "REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows " +
            $"FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement({keys}, {ignored});\n",
        $"CREATE OR REPLACE TRIGGER {TriggerNames[2]} AFTER DELETE ON {quotedTable} REFERENCING OLD TABLE AS loomworks_old_rows " +
            $"FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement({keys}, {ignored});\n",
    ];

    /// <summary>
    /// The four CREATE TRIGGER statements of a table keyed by one column (migration 2010), as a format() string whose
    /// first argument is the table and second its key column.
    /// </summary>
    internal static IEnumerable<string> KeyedCreateStatements =>
    [
        $"CREATE OR REPLACE TRIGGER {TriggerNames[0]} AFTER INSERT ON %1$I REFERENCING NEW TABLE AS loomworks_new_rows " +
            "FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_inserted(%2$L);\n",
        $"CREATE OR REPLACE TRIGGER {TriggerNames[1]} AFTER UPDATE ON %1$I " +
            "REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows " +
            "FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_updated(%2$L);\n",
        $"CREATE OR REPLACE TRIGGER {TriggerNames[2]} AFTER DELETE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows " +
            "FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_deleted(%2$L);\n",
        $"CREATE OR REPLACE TRIGGER {KeyTriggerName} AFTER UPDATE OF %2$I ON %1$I FOR EACH ROW EXECUTE FUNCTION loomworks_capture_key_moved(%2$L);\n",
    ];

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

    /// <summary>
    /// The SQL of migration 2004, kept as it was (a DO block): the three statement triggers on each table, all calling
    /// loomworks_capture_statement, replacing the row-level trigger of the first capture; migration 2010 reinstalls
    /// them with loomworks_install_capture, as <see cref="InstallAsync"/> does. Updates that change only
    /// <paramref name="ignoredUpdates"/> columns of a table are not captured: bookkeeping such as a user's last login
    /// is not a business change, and capturing it would make every login a change outside any operation that blocks
    /// rewinds.
    /// </summary>
    public static string InstallSql(IEnumerable<string> tableNames, IReadOnlyDictionary<string, string[]>? ignoredUpdates = null)
    {
        var (list, ignored) = InstallArguments(tableNames, ignoredUpdates);
        var creates = string.Concat(CreateStatements("%1$I", "%2$L", "%3$L"));
        return $$"""
            DO $install$
            DECLARE
                t text;
                keys text[];
                skip text[];
            BEGIN
                FOREACH t IN ARRAY ARRAY[{{list}}]::text[] LOOP
                    EXECUTE $key${{KeyColumnsQuery}}$key$ INTO keys USING t;
                    IF keys IS NULL THEN
                        RAISE EXCEPTION 'table % does not exist in this database', t;
                    END IF;
                    skip := ARRAY(SELECT jsonb_array_elements_text(coalesce({{ignored}} -> t, '[]')));
                    EXECUTE format('DROP TRIGGER IF EXISTS {{TriggerName}} ON %I', t);
                    EXECUTE format($create${{creates}}$create$, t, keys::text, skip::text);
                END LOOP;
            END
            $install$;
            """;
    }

    /// <summary>
    /// The tables as a SQL array body and the ignored update columns as a jsonb literal, every name checked first:
    /// both are spliced into the install block.
    /// </summary>
    private static (string List, string Ignored) InstallArguments(IEnumerable<string> tableNames, IReadOnlyDictionary<string, string[]>? ignoredUpdates)
    {
        ArgumentNullException.ThrowIfNull(tableNames);
        var tables = tableNames.Distinct(StringComparer.Ordinal).ToList();
        foreach (var table in tables.Concat(ignoredUpdates?.Keys ?? []).Concat(ignoredUpdates?.Values.SelectMany(c => c) ?? []))
        {
            Quote(table);
        }
        var list = string.Join(", ", tables.Select(t => "'" + t + "'"));
        var ignored = ignoredUpdates is null || ignoredUpdates.Count == 0
            ? "'{}'::jsonb"
            : "'" + System.Text.Json.JsonSerializer.Serialize(ignoredUpdates) + "'::jsonb";
        return (list, ignored);
    }

    /// <summary>
    /// The SQL of migration 2001, kept as it was: row-level capture triggers, which migration 2004 replaces. A new
    /// tenant runs both, as every existing tenant did.
    /// </summary>
    internal static string RowTriggerInstallSql(IEnumerable<string> tableNames, IReadOnlyDictionary<string, string[]>? ignoredUpdates = null)
    {
        var (list, ignored) = InstallArguments(tableNames, ignoredUpdates);
        return $$"""
            DO $install$
            DECLARE
                t text;
                keys text[];
                events text;
            BEGIN
                FOREACH t IN ARRAY ARRAY[{{list}}]::text[] LOOP
                    EXECUTE $key${{KeyColumnsQuery}}$key$ INTO keys USING t;
                    IF keys IS NULL THEN
                        RAISE EXCEPTION 'table % does not exist in this database', t;
                    END IF;
                    events := 'INSERT OR UPDATE OR DELETE';
                    IF {{ignored}} ? t THEN
                        SELECT 'INSERT OR DELETE OR UPDATE OF ' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO events
                        FROM pg_attribute a
                        WHERE a.attrelid = format('public.%I', t)::regclass AND a.attnum > 0 AND NOT a.attisdropped
                          AND NOT ({{ignored}} -> t) ? a.attname;
                    END IF;
                    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %I FOR EACH ROW EXECUTE FUNCTION loomworks_capture_change(%s)',
                        '{{TriggerName}}', events, t, (SELECT string_agg(quote_literal(k), ', ') FROM unnest(keys) k));
                END LOOP;
            END
            $install$;
            """;
    }

    internal const string KeyColumnsQuery = """
        SELECT coalesce(
            (SELECT array_agg(a.attname ORDER BY k.ord)
             FROM (SELECT i.indkey, i.indrelid FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisunique)
                       AND i.indexprs IS NULL AND i.indpred IS NULL
                   ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) x
             CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum),
            (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind IN ('r', 'p')
        """;
}
