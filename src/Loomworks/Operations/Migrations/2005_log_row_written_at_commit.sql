-- migration 2005: the log row written once at commit, change rows tagged without a round trip
-- The log row of an operation is written once, when it commits, with what it changed: no row written at the start
-- and filled in by a deferred trigger. The first captured statement of a transaction draws the operation id from the
-- log's sequence and keeps it in the transaction-local setting; the changes of a transaction that logs no operation
-- stay under an id no log row has, which every reader treats as outside any operation. loomworks_undo names a later
-- operation only when it is in the log. Replaces loomworks_capture_statement and loomworks_undo of 2003.

DROP TRIGGER loomworks_complete ON loomworks_ai_operation_log;
DROP FUNCTION loomworks_complete_at_commit();

-- Draws the current transaction's operation id and remembers it for the statements that follow. Called from an
-- uncorrelated subquery, so only a statement that captures at least one row draws one.
CREATE FUNCTION loomworks_next_operation_id() RETURNS bigint LANGUAGE sql VOLATILE AS $fn$
    SELECT set_config('loomworks.operation_id', nextval('loomworks_ai_operation_log_id_seq')::text, true)::bigint
$fn$;
CREATE OR REPLACE FUNCTION loomworks_capture_statement() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    op bigint := nullif(current_setting('loomworks.operation_id', true), '')::bigint;
    keys text[] := TG_ARGV[0]::text[];
    ignored text[] := TG_ARGV[1]::text[];
    k1 text := CASE WHEN cardinality(TG_ARGV[0]::text[]) = 1 THEN (TG_ARGV[0]::text[])[1] END;
BEGIN
    -- k1: the single key column most tables have, whose key is built without a subquery per row.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, new_row)
        SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME,
               CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, n.j -> k1)
                    ELSE (SELECT jsonb_object_agg(k, n.j -> k) FROM unnest(keys) k) END, 'I', n.j
        FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t) n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row)
        SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME,
               CASE WHEN k1 IS NOT NULL THEN jsonb_build_object(k1, o.j -> k1)
                    ELSE (SELECT jsonb_object_agg(k, o.j -> k) FROM unnest(keys) k) END, 'D', o.j
        FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t) o;
    ELSE
        -- Old and new rows pair up by key; a row whose key changed is captured as its deletion and an insertion,
        -- in that order, so undo (newest first) removes the new key before it brings the old one back.
        INSERT INTO loomworks_change (operation_id, table_name, row_key, kind, old_row, new_row)
        SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, coalesce(o.k, n.k),
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

CREATE OR REPLACE FUNCTION loomworks_undo(ops bigint[], force boolean, by_session text, by_agent text, by_user bigint,
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
                    SELECT c.table_name, c.row_key, (SELECT g.id FROM loomworks_ai_operation_log g WHERE g.id = n.operation_id) AS later_operation_id, n.changed_at AS later_change_at INTO hit
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
