-- migration 2012: foreign keys deferrable, and deferred while an undo applies its inverse
-- Undo checks foreign keys once an operation's inverse is complete, not row by row: PostgreSQL captures a delete
-- before the SET NULL or CASCADE actions it sets off, and no order of rows fixes every case (a partner and its company
-- can point at each other). Every foreign key becomes DEFERRABLE INITIALLY IMMEDIATE, which changes nothing for any
-- other statement, and loomworks_undo (as 2009 left it) defers them while it applies an inverse.

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
                                        WHERE l.row_hash = loomworks_row_hash(c.table_name, c.row_key) AND l.table_name = c.table_name AND l.row_key = c.row_key ORDER BY l.id DESC LIMIT 1) n
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
                n := loomworks_apply_inverse_deferred(cur, careful);
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
