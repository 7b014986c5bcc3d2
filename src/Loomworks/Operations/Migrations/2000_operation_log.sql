-- migration 2000: operation log and change capture
-- The log, the change table the capture triggers write, and the functions that find conflicts and undo. Later
-- migrations replace loomworks_apply_inverse (2008), loomworks_capture_change and loomworks_operation_conflicts (2009).

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
