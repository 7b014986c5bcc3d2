-- migration 2008: cheaper change capture: one plain statement per captured statement, two indexes per change row
-- Less work in every captured statement: one plain INSERT ... SELECT for tables keyed by one column, an update's old
-- and new rows paired by position instead of by a join and a sort, no check on the change kind and no primary key on the
-- change table. Readers find change rows by operation (operation_id, id) or by row, so the inverse functions of 2000
-- and 2003 come again, reading rows by their operation and id.

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
CREATE OR REPLACE FUNCTION loomworks_apply_inverse(op bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
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
            SELECT * INTO c FROM loomworks_change WHERE operation_id = op AND id = w;
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
            SELECT * INTO c FROM loomworks_change WHERE operation_id = op AND id = still[1];
            EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::%I, $1)',
                c.table_name, c.table_name) USING c.old_row;
        END IF;
        waiting := still;
    END LOOP;
    RETURN n;
END
$fn$;
CREATE OR REPLACE FUNCTION loomworks_apply_inverse_directly(op bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
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
                || 'jsonb_populate_record(NULL::%I, c.old_row) p WHERE c.operation_id = $2 AND c.id = ANY($1) ORDER BY array_position($1, c.id)',
                g.table_name, g.table_name) USING g.ids, op;
            n := n + cardinality(g.ids);
        ELSIF g.kind = 'I' AND NOT g.null_key THEN
            SELECT string_agg(format('x.%I = p.%I', e.key, e.key), ' AND ') INTO cond FROM jsonb_object_keys(g.sample) e(key);
            EXECUTE format('DELETE FROM %I x USING (SELECT p.* FROM loomworks_change c, jsonb_populate_record(NULL::%I, c.new_row) p '
                || 'WHERE c.operation_id = $2 AND c.id = ANY($1)) p WHERE %s', g.table_name, g.table_name, cond) USING g.ids, op;
            n := n + cardinality(g.ids);
        ELSE
            FOR c IN SELECT * FROM loomworks_change WHERE operation_id = op AND id = ANY(g.ids) ORDER BY array_position(g.ids, id) LOOP
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


