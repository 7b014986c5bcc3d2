using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// Tenant-database migrations of the operation log (versions 2000–2099; the ERP core owns 1000–1999): the log, the change table the capture
/// triggers write, the trigger functions, the log row written with the commit, and the server-side functions that
/// find conflicts and undo operations (loomworks_undo, one statement for any number of operations).
/// </summary>
public static partial class OperationsSchema
{
    /// <summary>The transaction-local setting that carries the current operation id to the row triggers.</summary>
    public const string OperationSetting = "loomworks.operation_id";

    public static IReadOnlyList<Migration> All { get; } =
    [
        new(2000, "operation log and change capture", InitialSql),
        new(2003, "statement-level capture, completion at commit, undo in one statement", StatementCaptureSql),
        new(2005, "the log row written once at commit, change rows tagged without a round trip", WriteOnceSql),
        new(2006, "what an operation changed read from its change rows", """
            -- A log row whose record_ids is NULL has its record ids, values and change count read from its change rows
            -- (loomworks_operation_summary), so committing an operation aggregates nothing and writes no copy of its rows.
            -- Retention stores the summary in the row before it prunes the changes it comes from.
            ALTER TABLE loomworks_ai_operation_log ALTER COLUMN record_ids DROP NOT NULL, ALTER COLUMN record_ids DROP DEFAULT,
                ALTER COLUMN change_count DROP NOT NULL, ALTER COLUMN change_count DROP DEFAULT;

            CREATE FUNCTION loomworks_operation_summary(op bigint, model text,
                OUT record_ids bigint[], OUT values_before jsonb, OUT values_after jsonb, OUT change_count integer)
            LANGUAGE sql STABLE AS $fn$
                WITH c AS (
                    SELECT id, table_name, row_key, old_row, new_row FROM loomworks_change WHERE operation_id = op),
                main AS (
                    SELECT (row_key ->> 'id')::bigint AS rid,
                           (array_agg(old_row ORDER BY id))[1] AS before,
                           (array_agg(new_row ORDER BY id DESC))[1] AS after
                    FROM c
                    WHERE table_name = replace(model, '.', '_') AND row_key ? 'id' AND jsonb_typeof(row_key -> 'id') = 'number'
                    GROUP BY 1)
                SELECT coalesce((SELECT array_agg(rid ORDER BY rid) FROM main), '{}'),
                       (SELECT jsonb_object_agg(rid, before) FROM main WHERE before IS NOT NULL),
                       (SELECT jsonb_object_agg(rid, after) FROM main WHERE after IS NOT NULL),
                       (SELECT count(*) FROM c)::integer
            $fn$;

            -- The log as readers see it: stored summaries as they are, the others from the change rows.
            CREATE VIEW loomworks_operation_log_read AS
            SELECT l.id, l.session_id, l.agent_id, l.user_id, l.tool_name, l.operation_type, l.model_name,
                   coalesce(l.record_ids, s.record_ids) AS record_ids,
                   CASE WHEN l.record_ids IS NULL THEN s.values_before ELSE l.values_before END AS values_before,
                   CASE WHEN l.record_ids IS NULL THEN s.values_after ELSE l.values_after END AS values_after,
                   l.state, l.error_message, l.execution_time_ms, l.snapshot_id, l.undone, l.undone_at, l.undone_by, l.undo_of,
                   coalesce(l.change_count, s.change_count) AS change_count, l.created_at
            FROM loomworks_ai_operation_log l
            LEFT JOIN LATERAL (SELECT * FROM loomworks_operation_summary(l.id, l.model_name) WHERE l.record_ids IS NULL) s ON true;
            """),
        new(2008, "cheaper change capture: one plain statement per captured statement, two indexes per change row",
            CheapCaptureSql + "\n" + InverseByOperationSql),
        new(2009, "change rows found by a bigint hash of their row, each row turned into jsonb once, an update captured in one statement", RowHashSql),
        new(2010, "a capture function per event for tables keyed by one column, key moves captured by a row trigger", KeyedCaptureSql),
        // Every captured row paid about 11 k instructions (a twelfth of its capture) to keep this index, which only the
        // hourly retention pass read; retention now finds old rows through their operation ids.
        new(2011, "no index on the change time", "DROP INDEX IF EXISTS loomworks_change_time;"),
        new(2012, "foreign keys deferrable, and deferred while an undo applies its inverse", DeferredUndoSql),
    ];

    /// <summary>The SQL of migration 2000, kept as it was: later migrations replace several of its functions.</summary>
    private const string InitialSql = """
        CREATE TABLE loomworks_ai_operation_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_id text,
            agent_id text,
            user_id bigint,
            tool_name text,
            operation_type text NOT NULL,
            model_name text,
            record_ids bigint[] NOT NULL DEFAULT '{}',
            values_before jsonb,
            values_after jsonb,
            state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
            error_message text,
            execution_time_ms integer,
            snapshot_id bigint,
            undone boolean NOT NULL DEFAULT false,
            undone_at timestamptz,
            undone_by bigint REFERENCES loomworks_ai_operation_log (id),
            undo_of bigint REFERENCES loomworks_ai_operation_log (id),
            change_count integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX loomworks_ai_operation_log_session ON loomworks_ai_operation_log (session_id, id) WHERE session_id IS NOT NULL;
        CREATE INDEX loomworks_ai_operation_log_agent ON loomworks_ai_operation_log (agent_id, id) WHERE agent_id IS NOT NULL;
        CREATE INDEX loomworks_ai_operation_log_model ON loomworks_ai_operation_log (model_name, id);
        -- BRIN: rows arrive in time order, and a B-tree on every insert is cost the hot path does not need.
        CREATE INDEX loomworks_ai_operation_log_created ON loomworks_ai_operation_log USING brin (created_at);

        -- No foreign key to the log: the row triggers are the hot path, and retention prunes these rows alone.
        CREATE TABLE loomworks_change (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            operation_id bigint,
            table_name text NOT NULL,
            row_key jsonb NOT NULL,
            kind "char" NOT NULL CHECK (kind IN ('I', 'U', 'D')),
            old_row jsonb,
            new_row jsonb,
            changed_at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX loomworks_change_operation ON loomworks_change (operation_id, id);
        CREATE INDEX loomworks_change_row ON loomworks_change (table_name, row_key, id);
        CREATE INDEX loomworks_change_time ON loomworks_change USING brin (changed_at);

        -- One row: since when the change table holds every captured change (capture start, then the retention cutoff).
        CREATE TABLE loomworks_oplog_coverage (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            covered_since timestamptz NOT NULL);
        INSERT INTO loomworks_oplog_coverage (covered_since) VALUES (now());

        -- Trigger arguments are the key columns, found at install time, so the trigger never looks them up.
        CREATE FUNCTION loomworks_capture_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            op bigint := nullif(current_setting('loomworks.operation_id', true), '')::bigint;
            src jsonb;
            key jsonb := '{}';
            col text;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                src := to_jsonb(NEW);
            ELSE
                src := to_jsonb(OLD);
            END IF;
            FOREACH col IN ARRAY TG_ARGV LOOP
                key := key || jsonb_build_object(col, src -> col);
            END LOOP;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, new_row)
                VALUES (op, TG_TABLE_NAME, key, 'I', src);
            ELSIF TG_OP = 'UPDATE' THEN
                IF OLD IS NOT DISTINCT FROM NEW THEN
                    RETURN NULL;
                END IF;
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)
                VALUES (op, TG_TABLE_NAME, key, 'U', src, to_jsonb(NEW));
            ELSE
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row)
                VALUES (op, TG_TABLE_NAME, key, 'D', src);
            END IF;
            RETURN NULL;
        END
        $fn$;

        -- The condition "row matches this key", spliced with %I so only real column names reach the SQL.
        CREATE FUNCTION loomworks_key_condition(key jsonb, source text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
            -- '=' rather than IS NOT DISTINCT FROM, which no index can serve; a null key part (tables without a
            -- primary key) is matched with IS NULL.
            SELECT coalesce(string_agg(CASE WHEN e.value = 'null'::jsonb THEN format('t.%I IS NULL', e.key)
                                            ELSE format('t.%I = (%s).%I', e.key, source, e.key) END,
                                       ' AND ' ORDER BY e.key), 'false')
            FROM jsonb_each(key) e
        $fn$;

        -- For each row the operation touched: the newest later change when the row no longer is as the operation left it.
        CREATE FUNCTION loomworks_operation_conflicts(op bigint)
        RETURNS TABLE (table_name text, row_key jsonb, later_operation_id bigint, later_change_at timestamptz)
        LANGUAGE plpgsql STABLE AS $fn$
        DECLARE
            r record;
            current_row jsonb;
        BEGIN
            FOR r IN
                SELECT DISTINCT ON (c.table_name, c.row_key) c.id, c.table_name, c.row_key, c.kind, c.new_row
                FROM loomworks_change c WHERE c.operation_id = op
                ORDER BY c.table_name, c.row_key, c.id DESC
            LOOP
                EXECUTE format('SELECT to_jsonb(t) FROM %I t WHERE %s', r.table_name,
                    loomworks_key_condition(r.row_key, format('jsonb_populate_record(NULL::%I, $1)', r.table_name)))
                    INTO current_row USING coalesce(r.new_row, r.row_key);
                IF current_row IS DISTINCT FROM r.new_row THEN
                    table_name := r.table_name;
                    row_key := r.row_key;
                    SELECT l.operation_id, l.changed_at INTO later_operation_id, later_change_at
                    FROM loomworks_change l
                    WHERE l.table_name = r.table_name AND l.row_key = r.row_key AND l.id > r.id
                    ORDER BY l.id DESC LIMIT 1;
                    RETURN NEXT;
                END IF;
            END LOOP;
        END
        $fn$;

        -- Applies the inverse of every change of the operation, newest first; returns how many rows it changed back.
        CREATE FUNCTION loomworks_apply_inverse(op bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
        DECLARE
            c record;
            cols text;
            n integer := 0;
            waiting bigint[] := '{}';
            still bigint[];
            w bigint;
        BEGIN
            FOR c IN SELECT * FROM loomworks_change WHERE operation_id = op ORDER BY id DESC LOOP
                IF c.kind = 'D' THEN
                    -- A cascaded delete captures the parent before its children, so newest-first would bring a
                    -- child back before its parent: a row whose parent is missing waits and is retried below.
                    BEGIN
                        EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::%I, $1)',
                            c.table_name, c.table_name) USING c.old_row;
                    EXCEPTION WHEN foreign_key_violation THEN
                        waiting := waiting || c.id;
                        CONTINUE;
                    END;
                ELSIF c.kind = 'I' THEN
                    EXECUTE format('DELETE FROM %I t WHERE %s', c.table_name,
                        loomworks_key_condition(c.row_key, format('jsonb_populate_record(NULL::%I, $1)', c.table_name)))
                        USING c.new_row;
                ELSE
                    -- Only the columns the change altered: identity ids cannot be assigned, and a forced undo
                    -- should not clobber columns a later operation set.
                    SELECT string_agg(format('%I = (jsonb_populate_record(NULL::%I, $1)).%I', o.key, c.table_name, o.key), ', ')
                    INTO cols
                    FROM jsonb_each(c.old_row) o
                    WHERE o.value IS DISTINCT FROM c.new_row -> o.key;
                    IF cols IS NULL THEN
                        CONTINUE;
                    END IF;
                    EXECUTE format('UPDATE %I t SET %s WHERE %s', c.table_name, cols,
                        loomworks_key_condition(c.row_key, format('jsonb_populate_record(NULL::%I, $2)', c.table_name)))
                        USING c.old_row, c.new_row;
                END IF;
                n := n + 1;
            END LOOP;
            WHILE cardinality(waiting) > 0 LOOP
                still := '{}';
                FOREACH w IN ARRAY waiting LOOP
                    SELECT * INTO c FROM loomworks_change WHERE id = w;
                    BEGIN
                        EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::%I, $1)',
                            c.table_name, c.table_name) USING c.old_row;
                        n := n + 1;
                    EXCEPTION WHEN foreign_key_violation THEN
                        still := still || w;
                    END;
                END LOOP;
                IF cardinality(still) = cardinality(waiting) THEN
                    -- No progress: the parent is gone for good (deleted by a later operation); say which row.
                    SELECT * INTO c FROM loomworks_change WHERE id = still[1];
                    EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::%I, $1)',
                        c.table_name, c.table_name) USING c.old_row;
                END IF;
                waiting := still;
            END LOOP;
            RETURN n;
        END
        $fn$;
        """;
    /// <summary>The SQL of migration 2003, kept as it was: migration 2005 replaces its completion at commit.</summary>
    private const string StatementCaptureSql = """
            -- Rows are written small (pending) and filled at commit: room on the page keeps that update HOT, so it touches
            -- no index.
            ALTER TABLE loomworks_ai_operation_log SET (fillfactor = 70);
            ALTER TABLE loomworks_ai_operation_log ADD COLUMN started_at timestamptz;

            -- Statement-level capture: one INSERT … SELECT per statement over its transition table instead of a plpgsql call
            -- and an INSERT per row. TG_ARGV[0] is the key columns, TG_ARGV[1] the columns whose updates alone are not captured.
            CREATE FUNCTION loomworks_capture_statement() RETURNS trigger LANGUAGE plpgsql AS $fn$
            DECLARE
                op bigint := nullif(current_setting('loomworks.operation_id', true), '')::bigint;
                keys text[] := TG_ARGV[0]::text[];
                ignored text[] := TG_ARGV[1]::text[];
                k1 text := CASE WHEN cardinality(TG_ARGV[0]::text[]) = 1 THEN (TG_ARGV[0]::text[])[1] END;
            BEGIN
                -- k1: the single key column most tables have, whose key is built without a subquery per row.
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, new_row)
                    SELECT op, TG_TABLE_NAME,
                           CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, n.j -> k1)
                                ELSE (SELECT jsonb_object_agg(k, n.j -> k) FROM unnest(keys) k) END, 'I', n.j
                    FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t) n;
                ELSIF TG_OP = 'DELETE' THEN
                    INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row)
                    SELECT op, TG_TABLE_NAME,
                           CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, o.j -> k1)
                                ELSE (SELECT jsonb_object_agg(k, o.j -> k) FROM unnest(keys) k) END, 'D', o.j
                    FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t) o;
                ELSE
                    -- Old and new rows pair up by key; a row whose key changed is captured as its deletion and an insertion,
                    -- in that order, so undo (newest first) removes the new key before it brings the old one back.
                    INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)
                    SELECT op, TG_TABLE_NAME, coalesce(o.k, n.k),
                           CASE WHEN n.k IS NULL THEN 'D' WHEN o.k IS NULL THEN 'I' ELSE 'U' END, o.j, n.j
                    FROM (SELECT CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, s.j -> k1)
                                      ELSE (SELECT jsonb_object_agg(k, s.j -> k) FROM unnest(keys) k) END AS k, s.j
                          FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t) s) o
                    FULL JOIN (SELECT CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, s.j -> k1)
                                           ELSE (SELECT jsonb_object_agg(k, s.j -> k) FROM unnest(keys) k) END AS k, s.j
                               FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t) s) n ON n.k = o.k
                    WHERE o.k IS NULL OR n.k IS NULL OR o.j - ignored <> n.j - ignored
                    ORDER BY (n.k IS NULL) DESC, (o.k IS NULL);
                END IF;
                RETURN NULL;
            END
            $fn$;

            -- Fills in what an operation changed (record ids and values of its model's rows, count) and marks it done.
            CREATE FUNCTION loomworks_complete_operation(op bigint) RETURNS void LANGUAGE plpgsql AS $fn$
            BEGIN
                WITH c AS (
                    SELECT table_name, row_key, old_row, new_row, id FROM loomworks_change WHERE operation_id = op),
                main AS (
                    SELECT (row_key ->> 'id')::bigint AS rid,
                           (array_agg(old_row ORDER BY id))[1] AS before,
                           (array_agg(new_row ORDER BY id DESC))[1] AS after
                    FROM c
                    WHERE table_name = (SELECT replace(l.model_name, '.', '_') FROM loomworks_ai_operation_log l WHERE l.id = op)
                      AND row_key ? 'id' AND jsonb_typeof(row_key -> 'id') = 'number'
                    GROUP BY 1)
                UPDATE loomworks_ai_operation_log SET
                    state = 'done',
                    execution_time_ms = least(extract(epoch FROM clock_timestamp() - coalesce(started_at, created_at)) * 1000, 2147483647)::integer,
                    change_count = (SELECT count(*) FROM c),
                    record_ids = coalesce((SELECT array_agg(rid ORDER BY rid) FROM main), '{}'),
                    values_before = (SELECT jsonb_object_agg(rid, before) FROM main WHERE before IS NOT NULL),
                    values_after = (SELECT jsonb_object_agg(rid, after) FROM main WHERE after IS NOT NULL)
                WHERE id = op AND state = 'pending';
            END
            $fn$;

            -- An operation completes itself at commit: no round trip of its own, and every change of the transaction counted.
            CREATE FUNCTION loomworks_complete_at_commit() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                PERFORM loomworks_complete_operation(NEW.id);
                RETURN NULL;
            END
            $fn$;
            CREATE CONSTRAINT TRIGGER loomworks_complete AFTER INSERT ON loomworks_ai_operation_log
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION loomworks_complete_at_commit();

            -- Rows the operations touched whose current state is not the newest captured state of them: changed without being
            -- captured (capture bypassed, or only bookkeeping columns changed). One query per table for all the operations; while
            -- no such row exists, the newest captured change of a row says exactly what it holds, and the conflicts of each
            -- operation are found from the change table alone. Returns the first such row and the newest operation touching it.
            CREATE FUNCTION loomworks_uncaptured_change(ops bigint[])
            RETURNS TABLE (operation_id bigint, table_name text, row_key jsonb)
            LANGUAGE plpgsql STABLE AS $fn$
            DECLARE
                t text;
                sample jsonb;
                nulls boolean;
                cond text;
            BEGIN
                FOR t, sample, nulls IN
                    SELECT c.table_name, (array_agg(c.row_key))[1],
                           bool_or(EXISTS (SELECT 1 FROM jsonb_each(c.row_key) e WHERE e.value = 'null'::jsonb))
                    FROM loomworks_change c WHERE c.operation_id = ANY(ops)
                    GROUP BY c.table_name ORDER BY c.table_name
                LOOP
                    SELECT string_agg(format(CASE WHEN nulls THEN 'x.%I IS NOT DISTINCT FROM (jsonb_populate_record(NULL::%I, r.row_key)).%I'
                                                  ELSE 'x.%I = (jsonb_populate_record(NULL::%I, r.row_key)).%I' END, e.key, t, e.key), ' AND ')
                    INTO cond FROM jsonb_object_keys(sample) e(key);
                    RETURN QUERY EXECUTE format($q$
                        SELECT r.operation_id, $2, r.row_key FROM (
                            SELECT DISTINCT ON (c.row_key) c.row_key, c.operation_id FROM loomworks_change c
                            WHERE c.operation_id = ANY($1) AND c.table_name = $2 ORDER BY c.row_key, c.id DESC) r
                        CROSS JOIN LATERAL (SELECT l.new_row FROM loomworks_change l
                                            WHERE l.table_name = $2 AND l.row_key = r.row_key ORDER BY l.id DESC LIMIT 1) n
                        LEFT JOIN LATERAL (SELECT to_jsonb(x) AS j FROM %I x WHERE %s) cur ON true
                        WHERE cur.j IS DISTINCT FROM n.new_row
                        ORDER BY r.operation_id DESC, r.row_key LIMIT 1
                        $q$, t, cond) USING ops, t;
                    IF FOUND THEN
                        RETURN;
                    END IF;
                END LOOP;
            END
            $fn$;

            -- The inverse of an operation's changes, newest first, without a subtransaction per row. A run of consecutive
            -- deletions holds distinct rows that all existed together, so it is restored oldest first: a cascaded delete is
            -- captured parent before children, and the parent then comes back first. Consecutive deletions (and insertions) of
            -- one table are restored (removed) by one statement. When a parent is still missing (children deleted before their
            -- parent by hand), the caller falls back to loomworks_apply_inverse, which waits and retries row by row.
            CREATE FUNCTION loomworks_apply_inverse_directly(op bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
            DECLARE
                g record;
                c record;
                cols text;
                cond text;
                n integer := 0;
            BEGIN
                FOR g IN
                    SELECT o.table_name, o.kind, array_agg(o.id ORDER BY o.ord) AS ids, (array_agg(o.row_key))[1] AS sample,
                           bool_or(EXISTS (SELECT 1 FROM jsonb_each(o.row_key) e WHERE e.value = 'null'::jsonb)) AS null_key
                    FROM (SELECT q.*, q.ord - row_number() OVER (PARTITION BY q.table_name, q.kind ORDER BY q.ord) AS island
                          FROM (SELECT s.id, s.table_name, s.kind, s.row_key,
                                       row_number() OVER (ORDER BY s.run DESC, s.kind <> 'D', s.id) AS ord
                                FROM (SELECT x.id, x.table_name, x.kind, x.row_key,
                                             count(*) FILTER (WHERE x.kind <> 'D') OVER (ORDER BY x.id) AS run
                                      FROM loomworks_change x WHERE x.operation_id = op) s) q) o
                    GROUP BY o.table_name, o.kind, CASE WHEN o.kind = 'U' THEN o.ord ELSE o.island END
                    ORDER BY min(o.ord)
                LOOP
                    IF g.kind = 'D' THEN
                        EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT p.* FROM loomworks_change c, '
                            || 'jsonb_populate_record(NULL::%I, c.old_row) p WHERE c.id = ANY($1) ORDER BY array_position($1, c.id)',
                            g.table_name, g.table_name) USING g.ids;
                        n := n + cardinality(g.ids);
                    ELSIF g.kind = 'I' AND NOT g.null_key THEN
                        SELECT string_agg(format('x.%I = p.%I', e.key, e.key), ' AND ') INTO cond FROM jsonb_object_keys(g.sample) e(key);
                        EXECUTE format('DELETE FROM %I x USING (SELECT p.* FROM loomworks_change c, jsonb_populate_record(NULL::%I, c.new_row) p '
                            || 'WHERE c.id = ANY($1)) p WHERE %s', g.table_name, g.table_name, cond) USING g.ids;
                        n := n + cardinality(g.ids);
                    ELSE
                        FOR c IN SELECT * FROM loomworks_change WHERE id = ANY(g.ids) ORDER BY array_position(g.ids, id) LOOP
                            IF c.kind = 'I' THEN
                                EXECUTE format('DELETE FROM %I t WHERE %s', c.table_name,
                                    loomworks_key_condition(c.row_key, format('jsonb_populate_record(NULL::%I, $1)', c.table_name)))
                                    USING c.new_row;
                            ELSE
                                SELECT string_agg(format('%I = (jsonb_populate_record(NULL::%I, $1)).%I', o.key, c.table_name, o.key), ', ')
                                INTO cols
                                FROM jsonb_each(c.old_row) o
                                WHERE o.value IS DISTINCT FROM c.new_row -> o.key;
                                IF cols IS NULL THEN
                                    CONTINUE;
                                END IF;
                                EXECUTE format('UPDATE %I t SET %s WHERE %s', c.table_name, cols,
                                    loomworks_key_condition(c.row_key, format('jsonb_populate_record(NULL::%I, $2)', c.table_name)))
                                    USING c.old_row, c.new_row;
                            END IF;
                            n := n + 1;
                        END LOOP;
                    END IF;
                END LOOP;
                RETURN n;
            END
            $fn$;

            -- Undoes the operations in the order given, in one statement: for each, lock its log row, check it can be undone,
            -- log the undo as an operation of its own, apply the inverse, complete the undo and mark both. A refusal raises
            -- SQLSTATE LWU00 whose message is a JSON object naming it, and the caller's transaction rolls back.
            CREATE FUNCTION loomworks_undo(ops bigint[], force boolean, by_session text, by_agent text, by_user bigint,
                by_tool text, by_snapshot bigint)
            RETURNS TABLE (operation_id bigint, undo_operation_id bigint, rows_changed integer)
            LANGUAGE plpgsql AS $fn$
            DECLARE
                careful boolean := false;
                cur bigint;
                r record;
                hit record;
                undo_id bigint;
                n integer;
                done_ops bigint[];
                undo_ids bigint[];
                counts integer[];
            BEGIN
                IF NOT force THEN
                    SELECT * INTO hit FROM loomworks_uncaptured_change(ops);
                    IF FOUND THEN
                        RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'conflict', 'id', hit.operation_id,
                            'table', hit.table_name, 'row_key', hit.row_key::text)::text;
                    END IF;
                END IF;
                LOOP
                    done_ops := '{}';
                    undo_ids := '{}';
                    counts := '{}';
                    BEGIN
                        FOREACH cur IN ARRAY ops LOOP
                            SELECT l.state, l.undone, l.undone_at, l.undone_by, l.undo_of, l.model_name, l.created_at, v.covered_since INTO r
                            FROM loomworks_ai_operation_log l CROSS JOIN loomworks_oplog_coverage v WHERE l.id = cur FOR UPDATE OF l;
                            IF NOT FOUND THEN
                                RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'not_found', 'id', cur)::text;
                            ELSIF r.undone THEN
                                RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'already_undone', 'id', cur,
                                    'undone_at', r.undone_at, 'undone_by', r.undone_by)::text;
                            ELSIF r.state = 'failed' THEN
                                RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'failed', 'id', cur)::text;
                            ELSIF r.created_at < r.covered_since THEN
                                RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'not_covered', 'id', cur,
                                    'created_at', r.created_at)::text;
                            END IF;
                            IF NOT force THEN
                                -- A later change of a row this operation touched that left it otherwise than this operation did
                                -- (an undo that put it back as it was is no conflict); the newest such change is named.
                                SELECT c.table_name, c.row_key, n.operation_id AS later_operation_id, n.changed_at AS later_change_at INTO hit
                                FROM (SELECT DISTINCT ON (x.table_name, x.row_key) x.id, x.table_name, x.row_key, x.new_row
                                      FROM loomworks_change x WHERE x.operation_id = cur ORDER BY x.table_name, x.row_key, x.id DESC) c
                                CROSS JOIN LATERAL (SELECT l.id, l.operation_id, l.changed_at, l.new_row FROM loomworks_change l
                                                    WHERE l.table_name = c.table_name AND l.row_key = c.row_key ORDER BY l.id DESC LIMIT 1) n
                                WHERE n.id <> c.id AND n.new_row IS DISTINCT FROM c.new_row
                                ORDER BY c.table_name, c.row_key LIMIT 1;
                                IF FOUND THEN
                                    RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'conflict', 'id', cur,
                                        'table', hit.table_name, 'row_key', hit.row_key::text, 'later_operation_id', hit.later_operation_id,
                                        'later_change_at', hit.later_change_at)::text;
                                END IF;
                            END IF;
                            INSERT INTO loomworks_ai_operation_log
                                (operation_type, model_name, session_id, agent_id, user_id, tool_name, snapshot_id, undo_of, started_at)
                            VALUES ('undo', r.model_name, by_session, by_agent, by_user, by_tool, by_snapshot, cur, clock_timestamp())
                            RETURNING id INTO undo_id;
                            PERFORM set_config('loomworks.operation_id', undo_id::text, true);
                            IF careful THEN
                                n := loomworks_apply_inverse(cur);
                            ELSE
                                n := loomworks_apply_inverse_directly(cur);
                            END IF;
                            PERFORM loomworks_complete_operation(undo_id);
                            -- Undoing an undo is a redo: the original is in effect again and may be undone again.
                            UPDATE loomworks_ai_operation_log l
                            SET undone = (l.id = cur), undone_at = CASE WHEN l.id = cur THEN now() END,
                                undone_by = CASE WHEN l.id = cur THEN undo_id END
                            WHERE l.id = cur OR l.id = r.undo_of;
                            done_ops := done_ops || cur;
                            undo_ids := undo_ids || undo_id;
                            counts := counts || n;
                        END LOOP;
                        PERFORM set_config('loomworks.operation_id', '', true);
                        EXIT;
                    EXCEPTION
                        WHEN foreign_key_violation THEN
                            -- A deleted row came back before its parent: go again, waiting and retrying row by row.
                            IF careful THEN
                                RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'constraint', 'id', cur,
                                    'message', SQLERRM)::text;
                            END IF;
                            careful := true;
                        WHEN integrity_constraint_violation THEN
                            RAISE EXCEPTION USING ERRCODE = 'LWU00', MESSAGE = jsonb_build_object('refusal', 'constraint', 'id', cur,
                                'message', SQLERRM)::text;
                    END;
                END LOOP;
                RETURN QUERY SELECT * FROM unnest(done_ops, undo_ids, counts);
            END
            $fn$;
            """;

    /// <summary>
    /// Migration 2005. The log row of an operation is written once, when it commits (with what it changed, counted then):
    /// no row written at the start and filled in by a deferred trigger, so no second tuple and no round trip of its own.
    /// Change rows still need the operation's id while the work runs, so the first captured statement of a transaction
    /// draws it from the log's own sequence and keeps it in the transaction-local setting; a transaction that logs no
    /// operation leaves its changes under an id no log row has, which every reader treats as "outside any operation".
    /// loomworks_undo names a later operation only when it is in the log.
    /// </summary>
    private static string WriteOnceSql => """
        DROP TRIGGER loomworks_complete ON loomworks_ai_operation_log;
        DROP FUNCTION loomworks_complete_at_commit();

        -- Draws the current transaction's operation id and remembers it for the statements that follow. Called from an
        -- uncorrelated subquery, so only a statement that captures at least one row draws one.
        CREATE FUNCTION loomworks_next_operation_id() RETURNS bigint LANGUAGE sql VOLATILE AS $fn$
            SELECT set_config('loomworks.operation_id', nextval('loomworks_ai_operation_log_id_seq')::text, true)::bigint
        $fn$;

        """ + StatementCaptureSql[
            StatementCaptureSql.IndexOf("CREATE FUNCTION loomworks_capture_statement()", StringComparison.Ordinal)..
            StatementCaptureSql.IndexOf("-- Fills in what an operation changed", StringComparison.Ordinal)]
            .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", StringComparison.Ordinal)
            .Replace("SELECT op, TG_TABLE_NAME", "SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME", StringComparison.Ordinal)
        + StatementCaptureSql[StatementCaptureSql.IndexOf("CREATE FUNCTION loomworks_undo(", StringComparison.Ordinal)..]
            .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", StringComparison.Ordinal)
            .Replace("n.operation_id AS later_operation_id",
                "(SELECT g.id FROM loomworks_ai_operation_log g WHERE g.id = n.operation_id) AS later_operation_id", StringComparison.Ordinal);

    /// <summary>
    /// Migration 2008: the capture function's work per statement cut down, since it runs inside every write. Tables with a
    /// key of one column (nearly all) get one plain INSERT … SELECT per statement with no subquery per row, and an update's
    /// old and new rows are paired by position instead of by a join and a sort. The check on the change kind goes: the
    /// capture function is the table's only writer, and the check's expression was rebuilt for every captured statement.
    /// So does the primary key: every reader finds change rows by operation (operation_id, id) or by row (table_name,
    /// row_key, id), and the undo functions that looked rows up by id alone now name the operation too
    /// (<see cref="InverseByOperationSql"/>).
    /// </summary>
    private const string CheapCaptureSql = """
        ALTER TABLE loomworks_change DROP CONSTRAINT IF EXISTS loomworks_change_kind_check;
        ALTER TABLE loomworks_change DROP CONSTRAINT IF EXISTS loomworks_change_pkey;

        CREATE OR REPLACE FUNCTION loomworks_capture_statement() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            op bigint := nullif(current_setting('loomworks.operation_id', true), '')::bigint;
            keys text[] := TG_ARGV[0]::text[];
            ignored text[] := TG_ARGV[1]::text[];
            k1 text := CASE WHEN cardinality(keys) = 1 THEN keys[1] END;
            olds jsonb[];
            news jsonb[];
        BEGIN
            -- Each branch is its own statement with its own cached plan, so a statement starts only the plan it runs.
            IF k1 IS NOT NULL AND TG_OP = 'INSERT' THEN
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, new_row)
                SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, jsonb_build_object(k1, n.j -> k1), 'I', n.j
                FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t) n;
                RETURN NULL;
            ELSIF k1 IS NOT NULL AND TG_OP = 'DELETE' THEN
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row)
                SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, jsonb_build_object(k1, o.j -> k1), 'D', o.j
                FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t) o;
                RETURN NULL;
            END IF;
            -- An update's old and new rows pair up by position: PostgreSQL adds each updated row's old and new version to
            -- the two transition tables together. A pair whose keys differ is not an update of one row (below).
            IF TG_OP <> 'INSERT' THEN
                olds := ARRAY(SELECT to_jsonb(t) FROM loomworks_old_rows t);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                news := ARRAY(SELECT to_jsonb(t) FROM loomworks_new_rows t);
            END IF;
            IF k1 IS NOT NULL AND NOT EXISTS (SELECT FROM unnest(olds, news) p(o, n) WHERE p.o -> k1 IS DISTINCT FROM p.n -> k1) THEN
                INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)
                SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, jsonb_build_object(k1, p.o -> k1), 'U', p.o, p.n
                FROM unnest(olds, news) p(o, n)
                WHERE p.o - ignored <> p.n - ignored;
                RETURN NULL;
            END IF;
            -- Keys of several columns, and updates that changed a key: a row whose key changed is captured as its deletion
            -- and an insertion, every deletion first, so undo (newest first) removes the new keys before it brings the old
            -- ones back.
            INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)
            SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, x.k, x.kind, x.o, x.n
            FROM (SELECT p.o, p.n, p.ord, (SELECT jsonb_object_agg(k, p.o -> k) FROM unnest(keys) k) AS ko,
                         (SELECT jsonb_object_agg(k, p.n -> k) FROM unnest(keys) k) AS kn
                  FROM unnest(olds, news) WITH ORDINALITY p(o, n, ord)) p
            CROSS JOIN LATERAL (VALUES (1, p.ko, 'D'::"char", p.o, NULL::jsonb), (2, p.ko, 'U', p.o, p.n), (3, p.kn, 'I', NULL, p.n))
                x(step, k, kind, o, n)
            WHERE CASE x.step WHEN 1 THEN p.o IS NOT NULL AND p.ko IS DISTINCT FROM p.kn
                              WHEN 2 THEN p.ko = p.kn AND p.o - ignored <> p.n - ignored
                              ELSE p.n IS NOT NULL AND p.ko IS DISTINCT FROM p.kn END
            ORDER BY x.step, p.ord;
            RETURN NULL;
        END
        $fn$;
        """;

    /// <summary>
    /// The inverse functions of migrations 2000 and 2003 as they were, but reading change rows by their operation and id
    /// instead of by id alone, which no index serves after migration 2008.
    /// </summary>
    private static string InverseByOperationSql =>
        (InitialSql[InitialSql.IndexOf("CREATE FUNCTION loomworks_apply_inverse(", StringComparison.Ordinal)..]
            .Replace("FROM loomworks_change WHERE id = ", "FROM loomworks_change WHERE operation_id = op AND id = ", StringComparison.Ordinal)
        + "\n" + StatementCaptureSql[
            StatementCaptureSql.IndexOf("CREATE FUNCTION loomworks_apply_inverse_directly(", StringComparison.Ordinal)..
            StatementCaptureSql.IndexOf("-- Undoes the operations in the order given", StringComparison.Ordinal)]
            .Replace("WHERE c.id = ANY($1)", "WHERE c.operation_id = $2 AND c.id = ANY($1)", StringComparison.Ordinal)
            .Replace("USING g.ids;", "USING g.ids, op;", StringComparison.Ordinal)
            .Replace("FROM loomworks_change WHERE id = ANY(g.ids)", "FROM loomworks_change WHERE operation_id = op AND id = ANY(g.ids)",
                StringComparison.Ordinal))
        .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", StringComparison.Ordinal);

    /// <summary>
    /// Migration 2009: less work in every captured statement. The index that finds the changes of one row was on
    /// (table_name, row_key, id), so each change row's insert compared jsonb keys and collated table names all the way
    /// down the tree; it is now on (row_hash, id), a bigint the capture computes (<c>loomworks_row_hash</c>), and every
    /// reader that looks a row up matches the hash and then the table and key themselves, so a collision costs a row read
    /// and never a wrong answer. Rows captured before are hashed here. The capture of a one-column-key insert or delete
    /// turns each row into jsonb and builds its key once (the planner had flattened the subquery and called to_jsonb for
    /// the key and again for the row), parses the key columns once, draws the operation id in PL/pgSQL instead of in a
    /// volatile subquery (which kept the planner from flattening the INSERT's SELECT, one plan node more to start per
    /// statement) and evaluates three expressions instead of five: PL/pgSQL prepares each expression once per transaction, and a call is a transaction. An update
    /// of a one-column-key table is captured by one statement instead of four (two arrays, the key check, the insert).
    /// </summary>
    private static string RowHashSql => """
        DROP INDEX loomworks_change_row;
        ALTER TABLE loomworks_change ADD COLUMN row_hash bigint;

        -- The hash functions hash partitioning relies on, which PostgreSQL keeps stable across versions; jsonb's agrees
        -- with jsonb equality (1 and 1.0 hash alike). Inlined by the planner where it is used.
        CREATE FUNCTION loomworks_row_hash(table_name text, row_key jsonb) RETURNS bigint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
            SELECT hashtextextended(table_name, jsonb_hash_extended(row_key, 0))
        $fn$;

        UPDATE loomworks_change SET row_hash = loomworks_row_hash(table_name, row_key);
        CREATE INDEX loomworks_change_row_hash ON loomworks_change (row_hash, id);

        CREATE OR REPLACE FUNCTION loomworks_capture_statement() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            keys text[] := TG_ARGV[0]::text[];
            k1 text := CASE WHEN cardinality(keys) = 1 THEN keys[1] END;
            op bigint;
            ignored text[];
            olds jsonb[];
            news jsonb[];
            key_moved boolean;
        BEGIN
            -- OFFSET 0 keeps each row's jsonb and key computed once: flattened, every use would compute them again.
            IF k1 IS NOT NULL AND TG_OP = 'INSERT' THEN
                op := coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id());
                INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, new_row)
                SELECT op, TG_TABLE_NAME, n.k, loomworks_row_hash(TG_TABLE_NAME, n.k), 'I', n.j
                FROM (SELECT r.j, jsonb_build_object(k1, r.j -> k1) AS k
                      FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t OFFSET 0) r OFFSET 0) n;
                RETURN NULL;
            ELSIF k1 IS NOT NULL AND TG_OP = 'DELETE' THEN
                op := coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id());
                INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row)
                SELECT op, TG_TABLE_NAME, o.k, loomworks_row_hash(TG_TABLE_NAME, o.k), 'D', o.j
                FROM (SELECT r.j, jsonb_build_object(k1, r.j -> k1) AS k
                      FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t OFFSET 0) r OFFSET 0) o;
                RETURN NULL;
            END IF;
            op := nullif(current_setting('loomworks.operation_id', true), '')::bigint;
            ignored := TG_ARGV[1]::text[];
            IF k1 IS NOT NULL THEN
                -- An update of a one-column-key table, in one statement (each statement of a function takes its own
                -- snapshot and plan check). Its old and new rows pair up by position: PostgreSQL adds each updated row's
                -- old and new version to the two transition tables together. The pairs are captured unless one of them
                -- changed its key, which is not an update of one row and goes the general way below.
                WITH p AS MATERIALIZED (
                    SELECT u.o, u.n, jsonb_build_object(k1, u.o -> k1) AS k
                    FROM unnest(ARRAY(SELECT to_jsonb(t) FROM loomworks_old_rows t), ARRAY(SELECT to_jsonb(t) FROM loomworks_new_rows t)) u(o, n)),
                moved AS MATERIALIZED (SELECT EXISTS (SELECT FROM p WHERE p.o -> k1 IS DISTINCT FROM p.n -> k1) AS any),
                captured AS (
                    INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row, new_row)
                    SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, p.k, loomworks_row_hash(TG_TABLE_NAME, p.k), 'U', p.o, p.n
                    FROM p
                    WHERE NOT (SELECT m.any FROM moved m) AND p.o - ignored <> p.n - ignored
                    RETURNING 1)
                SELECT m.any INTO key_moved FROM moved m;
                IF NOT key_moved THEN
                    RETURN NULL;
                END IF;
            END IF;
            IF TG_OP <> 'INSERT' THEN
                olds := ARRAY(SELECT to_jsonb(t) FROM loomworks_old_rows t);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                news := ARRAY(SELECT to_jsonb(t) FROM loomworks_new_rows t);
            END IF;
        """ + HashedGeneralCaptureSql + """
        $fn$;

        """ + RowHashReadersSql;

    /// <summary>
    /// The general path of migration 2008's capture function (keys of several columns, updates that moved a key) as it
    /// was, but writing each change row's hash too.
    /// </summary>
    private static string HashedGeneralCaptureSql =>
        Between(CheapCaptureSql, "\n    -- Keys of several columns, and updates that changed a key", "$fn$;")
            .Replace("INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)",
                "INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row, new_row)", StringComparison.Ordinal)
            .Replace("TG_TABLE_NAME, x.k, x.kind, x.o, x.n", "TG_TABLE_NAME, x.k, loomworks_row_hash(TG_TABLE_NAME, x.k), x.kind, x.o, x.n",
                StringComparison.Ordinal);

    /// <summary>
    /// The functions of earlier migrations that write or look up change rows by row, as they were but with the hash:
    /// the row-level capture of migration 2000 (no tenant runs it since 2004, but a row it wrote must be found), the
    /// conflict lookups of loomworks_undo (2005), loomworks_uncaptured_change (2003) and loomworks_operation_conflicts (2000).
    /// </summary>
    private static string RowHashReadersSql =>
        (Between(InitialSql, "CREATE FUNCTION loomworks_capture_change()", "-- The condition \"row matches this key\"")
            .Replace("INSERT INTO loomworks_change (operation_id, table_name, row_key, kind,",
                "INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind,", StringComparison.Ordinal)
            .Replace("VALUES (op, TG_TABLE_NAME, key, ", "VALUES (op, TG_TABLE_NAME, key, loomworks_row_hash(TG_TABLE_NAME, key), ",
                StringComparison.Ordinal)
        + Between(InitialSql, "CREATE FUNCTION loomworks_operation_conflicts(", "-- Applies the inverse")
            .Replace("WHERE l.table_name = r.table_name AND l.row_key = r.row_key AND l.id > r.id",
                "WHERE l.row_hash = loomworks_row_hash(r.table_name, r.row_key) AND l.table_name = r.table_name AND l.row_key = r.row_key AND l.id > r.id",
                StringComparison.Ordinal)
        + Between(StatementCaptureSql, "CREATE FUNCTION loomworks_uncaptured_change(", "-- The inverse of an operation's changes")
            .Replace("WHERE l.table_name = $2 AND l.row_key = r.row_key ORDER BY l.id DESC LIMIT 1",
                "WHERE l.row_hash = loomworks_row_hash($2, r.row_key) AND l.table_name = $2 AND l.row_key = r.row_key ORDER BY l.id DESC LIMIT 1",
                StringComparison.Ordinal)
        + WriteOnceSql[WriteOnceSql.IndexOf("CREATE OR REPLACE FUNCTION loomworks_undo(", StringComparison.Ordinal)..]
            .Replace("WHERE l.table_name = c.table_name AND l.row_key = c.row_key ORDER BY l.id DESC LIMIT 1",
                "WHERE l.row_hash = loomworks_row_hash(c.table_name, c.row_key) AND l.table_name = c.table_name AND l.row_key = c.row_key "
                + "ORDER BY l.id DESC LIMIT 1", StringComparison.Ordinal))
        .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", StringComparison.Ordinal);

    /// <summary>The operation id of the transaction's changes: the one it runs under, else one drawn now (and kept for the rest).</summary>
    private const string CurrentOperationIdSql =
        "coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id())";

    /// <summary>
    /// Migration 2010: tables keyed by one column with no ignored columns (every business table but the users') get a
    /// capture function per event, each a single INSERT … SELECT with nothing to decide at run time: the key column comes
    /// as the trigger's argument instead of an array parsed on every call, and an update no longer checks for moved keys
    /// in a statement of its own (that check and its materialised rows cost a fifth of a captured write). A moved key is
    /// rare and is caught by a row trigger that fires only when an UPDATE names the key column
    /// (<c>loomworks_capture_update_key</c>; a trigger naming columns cannot have transition tables): it captures the old row's deletion, and PostgreSQL fires row triggers
    /// before statement triggers, so every deletion is logged before the statement's updates and insertions and undo
    /// (newest first) removes new keys before it brings old ones back. A key changed by a BEFORE trigger without the
    /// UPDATE naming it would escape that trigger; Loomworks' tables have none. Other tables keep
    /// <c>loomworks_capture_statement</c>. <c>loomworks_install_capture</c> installs either kind, here for every table
    /// captured so far (its ignored columns read from its update trigger) and later for <see cref="ChangeCapture.InstallAsync"/>.
    /// </summary>
    private static string KeyedCaptureSql => $$"""
        {{RowsCapturedSql("loomworks_capture_inserted", 'I', "new_row", "loomworks_new_rows")}}
        {{RowsCapturedSql("loomworks_capture_deleted", 'D', "old_row", "loomworks_old_rows")}}
        -- Old and new rows pair up by position: PostgreSQL adds each updated row's old and new version to the two
        -- transition tables together. A row left as it was is not captured; a row whose key moved is its insertion under
        -- the new key (its deletion under the old one is loomworks_capture_key_moved's).
        CREATE FUNCTION loomworks_capture_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            op bigint := {{CurrentOperationIdSql}};
        BEGIN
            INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row, new_row)
            SELECT op, TG_TABLE_NAME, p.k, loomworks_row_hash(TG_TABLE_NAME, p.k),
                   CASE WHEN p.moved THEN 'I' ELSE 'U' END, CASE WHEN NOT p.moved THEN p.o END, p.n
            FROM (SELECT u.o, u.n, jsonb_build_object(TG_ARGV[0], u.n -> TG_ARGV[0]) AS k, u.o -> TG_ARGV[0] <> u.n -> TG_ARGV[0] AS moved
                  FROM unnest(ARRAY(SELECT to_jsonb(t) FROM loomworks_old_rows t), ARRAY(SELECT to_jsonb(t) FROM loomworks_new_rows t)) u(o, n)
                  OFFSET 0) p
            WHERE p.moved OR p.o <> p.n;
            RETURN NULL;
        END
        $fn$;

        -- A row trigger on UPDATE OF the key column: the deletion of each row whose key the statement moved.
        CREATE FUNCTION loomworks_capture_key_moved() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            o jsonb := to_jsonb(OLD);
            k jsonb := jsonb_build_object(TG_ARGV[0], o -> TG_ARGV[0]);
        BEGIN
            IF k = jsonb_build_object(TG_ARGV[0], to_jsonb(NEW) -> TG_ARGV[0]) THEN
                RETURN NULL;
            END IF;
            INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row)
            VALUES ({{CurrentOperationIdSql}},
                    TG_TABLE_NAME, k, loomworks_row_hash(TG_TABLE_NAME, k), 'D', o);
            RETURN NULL;
        END
        $fn$;

        -- Installs (or replaces) the capture triggers of one table: the functions above when its key is one column and no
        -- update of it is ignored, else loomworks_capture_statement with its key columns and ignored columns.
        CREATE FUNCTION loomworks_install_capture(t text, ignored text[]) RETURNS void LANGUAGE plpgsql AS $fn$
        DECLARE
            keys text[];
        BEGIN
            EXECUTE $key${{ChangeCapture.KeyColumnsQuery}}$key$ INTO keys USING t;
            IF keys IS NULL THEN
                RAISE EXCEPTION 'table % does not exist in this database', t;
            END IF;
            EXECUTE format('DROP TRIGGER IF EXISTS {{ChangeCapture.TriggerName}} ON %1$I; DROP TRIGGER IF EXISTS {{ChangeCapture.KeyTriggerName}} ON %1$I', t);
            IF cardinality(keys) = 1 AND cardinality(ignored) = 0 THEN
                EXECUTE format($create${{string.Concat(ChangeCapture.KeyedCreateStatements)}}$create$, t, keys[1]);
            ELSE
                EXECUTE format($create${{string.Concat(ChangeCapture.CreateStatements("%1$I", "%2$L", "%3$L"))}}$create$, t, keys::text, ignored::text);
            END IF;
        END
        $fn$;

        DO $reinstall$
        DECLARE
            captured record;
        BEGIN
            FOR captured IN
                SELECT c.relname, (string_to_array(encode(g.tgargs, 'escape'), '\000'))[2]::text[] AS ignored
                FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE g.tgname = '{{ChangeCapture.TriggerNames[1]}}' AND n.nspname = 'public'
            LOOP
                PERFORM loomworks_install_capture(captured.relname, captured.ignored);
            END LOOP;
        END
        $reinstall$;
        """;

    /// <summary>
    /// The capture function of migration 2010 for inserts (<paramref name="kind"/> I, the new rows) or deletes (D, the
    /// old rows) of a table keyed by one column, whose name is the trigger's argument.
    /// </summary>
    private static string RowsCapturedSql(string function, char kind, string column, string rows) => $$"""
        CREATE FUNCTION {{function}}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            op bigint := {{CurrentOperationIdSql}};
        BEGIN
            -- OFFSET 0 keeps each row's jsonb and key computed once: flattened, every use would compute them again.
            INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, {{column}})
            SELECT op, TG_TABLE_NAME, c.k, loomworks_row_hash(TG_TABLE_NAME, c.k), '{{kind}}', c.j
            FROM (SELECT r.j, jsonb_build_object(TG_ARGV[0], r.j -> TG_ARGV[0]) AS k
                  FROM (SELECT to_jsonb(t) AS j FROM {{rows}} t OFFSET 0) r OFFSET 0) c;
            RETURN NULL;
        END
        $fn$;

        """;

    /// <summary>The text of <paramref name="sql"/> from <paramref name="from"/> up to <paramref name="to"/>.</summary>
    private static string Between(string sql, string from, string to)
    {
        var start = sql.IndexOf(from, StringComparison.Ordinal);
        return sql[start..sql.IndexOf(to, start, StringComparison.Ordinal)];
    }

    /// <summary>Brings a tenant database's operation-log schema to the latest version.</summary>
    public static Task<int> ApplyAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        SchemaMigrator.ApplyAsync(connection, All, cancellationToken);
}
