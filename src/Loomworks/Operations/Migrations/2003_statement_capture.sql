-- migration 2003: statement-level capture, completion at commit, undo in one statement
-- Later migrations replace loomworks_capture_statement (2005, 2008, 2009), loomworks_apply_inverse_directly (2008),
-- loomworks_uncaptured_change (2009) and loomworks_undo (2005, 2009, 2012); 2005 drops the completion at commit.

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
