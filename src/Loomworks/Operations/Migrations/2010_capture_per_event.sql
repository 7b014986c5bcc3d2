-- migration 2010: a capture function per event for tables keyed by one column, key moves captured by a row trigger
-- Tables keyed by one column with no ignored columns get a capture function per event, each a single
-- INSERT ... SELECT. A key that an UPDATE moves is captured by a row trigger on UPDATE OF the key column; row triggers
-- fire before statement triggers, so undo (newest first) removes new keys before it brings old ones back. A key changed
-- by a BEFORE trigger without the UPDATE naming it would escape that trigger; Loomworks' tables have none. Other tables
-- keep loomworks_capture_statement; loomworks_install_capture installs either kind, here for every table captured so far.

CREATE FUNCTION loomworks_capture_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    op bigint := coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id());
BEGIN
    -- OFFSET 0 keeps each row's jsonb and key computed once: flattened, every use would compute them again.
    INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, new_row)
    SELECT op, TG_TABLE_NAME, c.k, loomworks_row_hash(TG_TABLE_NAME, c.k), 'I', c.j
    FROM (SELECT r.j, jsonb_build_object(TG_ARGV[0], r.j -> TG_ARGV[0]) AS k
          FROM (SELECT to_jsonb(t) AS j FROM loomworks_new_rows t OFFSET 0) r OFFSET 0) c;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION loomworks_capture_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    op bigint := coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id());
BEGIN
    -- OFFSET 0 keeps each row's jsonb and key computed once: flattened, every use would compute them again.
    INSERT INTO loomworks_change (operation_id, table_name, row_key, row_hash, kind, old_row)
    SELECT op, TG_TABLE_NAME, c.k, loomworks_row_hash(TG_TABLE_NAME, c.k), 'D', c.j
    FROM (SELECT r.j, jsonb_build_object(TG_ARGV[0], r.j -> TG_ARGV[0]) AS k
          FROM (SELECT to_jsonb(t) AS j FROM loomworks_old_rows t OFFSET 0) r OFFSET 0) c;
    RETURN NULL;
END
$fn$;

-- Old and new rows pair up by position: PostgreSQL adds each updated row's old and new version to the two
-- transition tables together. A row left as it was is not captured; a row whose key moved is its insertion under
-- the new key (its deletion under the old one is loomworks_capture_key_moved's).
CREATE FUNCTION loomworks_capture_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    op bigint := coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id());
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
    VALUES (coalesce(nullif(current_setting('loomworks.operation_id', true), '')::bigint, loomworks_next_operation_id()),
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
    EXECUTE $key$SELECT coalesce(
    (SELECT array_agg(a.attname ORDER BY k.ord)
     FROM (SELECT i.indkey, i.indrelid FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisunique)
               AND i.indexprs IS NULL AND i.indpred IS NULL
           ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) x
     CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum),
    (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind IN ('r', 'p')$key$ INTO keys USING t;
    IF keys IS NULL THEN
        RAISE EXCEPTION 'table % does not exist in this database', t;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS loomworks_capture ON %1$I; DROP TRIGGER IF EXISTS loomworks_capture_update_key ON %1$I', t);
    IF cardinality(keys) = 1 AND cardinality(ignored) = 0 THEN
        EXECUTE format($create$CREATE OR REPLACE TRIGGER loomworks_capture_insert AFTER INSERT ON %1$I REFERENCING NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_inserted(%2$L);
CREATE OR REPLACE TRIGGER loomworks_capture_update AFTER UPDATE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_updated(%2$L);
CREATE OR REPLACE TRIGGER loomworks_capture_delete AFTER DELETE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_deleted(%2$L);
CREATE OR REPLACE TRIGGER loomworks_capture_update_key AFTER UPDATE OF %2$I ON %1$I FOR EACH ROW EXECUTE FUNCTION loomworks_capture_key_moved(%2$L);
$create$, t, keys[1]);
    ELSE
        EXECUTE format($create$CREATE OR REPLACE TRIGGER loomworks_capture_insert AFTER INSERT ON %1$I REFERENCING NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
CREATE OR REPLACE TRIGGER loomworks_capture_update AFTER UPDATE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
CREATE OR REPLACE TRIGGER loomworks_capture_delete AFTER DELETE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
$create$, t, keys::text, ignored::text);
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
        WHERE g.tgname = 'loomworks_capture_update' AND n.nspname = 'public'
    LOOP
        PERFORM loomworks_install_capture(captured.relname, captured.ignored);
    END LOOP;
END
$reinstall$;
