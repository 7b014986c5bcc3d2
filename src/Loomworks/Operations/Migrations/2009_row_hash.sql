-- migration 2009: change rows found by a bigint hash of their row, each row turned into jsonb once, an update captured in one statement
-- Change rows found by row through a bigint hash (loomworks_row_hash) instead of an index on (table_name, row_key,
-- id): every reader matches the hash, then the table and key themselves, so a collision costs a row read and never a
-- wrong answer. Rows captured before are hashed here. The functions that write or look up change rows by row come again
-- with the hash: loomworks_capture_statement, loomworks_capture_change (2000: no tenant runs it since 2004, but the rows
-- it wrote must be found), loomworks_operation_conflicts (2000), loomworks_uncaptured_change (2003), loomworks_undo (2005).

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
    -- Keys of several columns, and updates that changed a key: a row whose key changed is captured as its deletion
    -- and an insertion, every deletion first, so undo (newest first) removes the new keys before it brings the old
    -- ones back.
    INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row, new_row)
    SELECT coalesce(op, (SELECT loomworks_next_operation_id())), TG_TABLE_NAME, x.k, loomworks_row_hash(TG_TABLE_NAME, x.k), x.kind, x.o, x.n
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
CREATE OR REPLACE FUNCTION loomworks_capture_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
        INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, new_row)
        VALUES (op, TG_TABLE_NAME, key, loomworks_row_hash(TG_TABLE_NAME, key), 'I', src);
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD IS NOT DISTINCT FROM NEW THEN
            RETURN NULL;
        END IF;
        INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row, new_row)
        VALUES (op, TG_TABLE_NAME, key, loomworks_row_hash(TG_TABLE_NAME, key), 'U', src, to_jsonb(NEW));
    ELSE
        INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row)
        VALUES (op, TG_TABLE_NAME, key, loomworks_row_hash(TG_TABLE_NAME, key), 'D', src);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION loomworks_operation_conflicts(op bigint)
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
            WHERE l.row_hash = loomworks_row_hash(r.table_name, r.row_key) AND l.table_name = r.table_name AND l.row_key = r.row_key AND l.id > r.id
            ORDER BY l.id DESC LIMIT 1;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION loomworks_uncaptured_change(ops bigint[])
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
                                WHERE l.row_hash = loomworks_row_hash($2, r.row_key) AND l.table_name = $2 AND l.row_key = r.row_key ORDER BY l.id DESC LIMIT 1) n
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
