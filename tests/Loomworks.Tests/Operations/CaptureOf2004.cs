using Loomworks.Operations;

namespace Loomworks.Tests.Operations;

/// <summary>
/// Change capture as migration 2004 installed it, on any tables: three statement triggers per table, all calling
/// loomworks_capture_statement with the table's key columns and no ignored columns. For tenants built as they were
/// before loomworks_install_capture (migration 2010) existed.
/// </summary>
public static class CaptureOf2004
{
    public static string InstallSql(IEnumerable<string> tableNames)
    {
        var list = string.Join(", ", tableNames.Select(t => "'" + ChangeCapture.Quote(t).Trim('"') + "'"));
        var creates = string.Concat(ChangeCapture.TriggerNames.Zip(
            ["AFTER INSERT ON %1$I REFERENCING NEW TABLE AS loomworks_new_rows",
             "AFTER UPDATE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows",
             "AFTER DELETE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows"],
            (trigger, events) => $"CREATE OR REPLACE TRIGGER {trigger} {events} " +
                "FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, '{}');\n"));
        return $$"""
            DO $install$
            DECLARE
                t text;
                keys text[];
            BEGIN
                FOREACH t IN ARRAY ARRAY[{{list}}]::text[] LOOP
                    SELECT coalesce(
                        (SELECT array_agg(a.attname ORDER BY k.ord)
                         FROM (SELECT i.indkey, i.indrelid FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisunique)
                                   AND i.indexprs IS NULL AND i.indpred IS NULL
                               ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) x
                         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum),
                        (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
                    INTO keys
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relname = t AND c.relkind IN ('r', 'p');
                    EXECUTE format($create${{creates}}$create$, t, keys::text);
                END LOOP;
            END
            $install$;
            """;
    }
}
