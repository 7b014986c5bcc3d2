namespace Loomworks.Operations;

public static partial class OperationsSchema
{
    /// <summary>
    /// Migration 2012: undo checks foreign keys once an operation's inverse is complete, not row by row. PostgreSQL
    /// captures a delete before the SET NULL or CASCADE actions it sets off, so the inverse (newest first) points a child
    /// back at its parent before the parent is back; no order of rows fixes every case (a partner and its company can
    /// point at each other). Every foreign key of the tenant becomes DEFERRABLE INITIALLY IMMEDIATE, which changes nothing
    /// for any other statement, and the inverse defers them while it runs: the undone state is checked as a whole.
    /// </summary>
    private static string DeferredUndoSql => """
        DO $deferrable$
        DECLARE
            f record;
        BEGIN
            FOR f IN
                SELECT r.relname, c.conname FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
                JOIN pg_namespace n ON n.oid = r.relnamespace
                WHERE c.contype = 'f' AND NOT c.condeferrable AND c.conparentid = 0 AND n.nspname = 'public'
            LOOP
                EXECUTE format('ALTER TABLE public.%I ALTER CONSTRAINT %I DEFERRABLE INITIALLY IMMEDIATE', f.relname, f.conname);
            END LOOP;
        END
        $deferrable$;

        -- Applies the inverse of an operation with the public schema's deferrable foreign keys that are checked
        -- immediately deferred, and checks them again before returning: a violation raises here, inside the undo, and
        -- names its constraint. Only those keys are named so that constraints a caller deferred keep waiting for commit.
        -- Tables whose keys are not deferrable (created later without DEFERRABLE) keep the row-by-row retries.
        CREATE FUNCTION loomworks_apply_inverse_deferred(op bigint, careful boolean) RETURNS integer LANGUAGE plpgsql AS $fn$
        DECLARE
            keys text;
            n integer;
        BEGIN
            -- Without a deletion to bring back, newest first never points a row at one that is not there.
            IF NOT EXISTS (SELECT FROM loomworks_change WHERE operation_id = op AND kind = 'D') THEN
                RETURN CASE WHEN careful THEN loomworks_apply_inverse(op) ELSE loomworks_apply_inverse_directly(op) END;
            END IF;
            SELECT string_agg(format('%I.%I', ns.nspname, c.conname), ', ') INTO keys
            FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace ns ON ns.oid = r.relnamespace
            WHERE c.contype = 'f' AND c.condeferrable AND NOT c.condeferred AND ns.nspname = 'public';
            IF keys IS NOT NULL THEN
                EXECUTE 'SET CONSTRAINTS ' || keys || ' DEFERRED';
            END IF;
            IF careful THEN
                n := loomworks_apply_inverse(op);
            ELSE
                n := loomworks_apply_inverse_directly(op);
            END IF;
            IF keys IS NOT NULL THEN
                EXECUTE 'SET CONSTRAINTS ' || keys || ' IMMEDIATE';
            END IF;
            RETURN n;
        END
        $fn$;

        """ + ReplaceOnce(NewestUndoSql, """
                            IF careful THEN
                                n := loomworks_apply_inverse(cur);
                            ELSE
                                n := loomworks_apply_inverse_directly(cur);
                            END IF;
            """, """
                            n := loomworks_apply_inverse_deferred(cur, careful);
            """);

    /// <summary>loomworks_undo as migration 2009 last defined it.</summary>
    private static string NewestUndoSql =>
        RowHashReadersSql[RowHashReadersSql.IndexOf("CREATE OR REPLACE FUNCTION loomworks_undo(", StringComparison.Ordinal)..];

    /// <summary><paramref name="sql"/> with its one <paramref name="old"/> replaced; a text that is not there is a bug here.</summary>
    private static string ReplaceOnce(string sql, string old, string replacement)
    {
        var at = sql.IndexOf(old, StringComparison.Ordinal);
        if (at < 0 || sql.IndexOf(old, at + 1, StringComparison.Ordinal) >= 0)
        {
            throw new InvalidOperationException($"expected the text once in the migration SQL: {old}");
        }
        return string.Concat(sql.AsSpan(0, at), replacement, sql.AsSpan(at + old.Length));
    }
}
