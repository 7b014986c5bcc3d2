-- migration 2004: statement-level change capture on the ERP core's tables
-- Three statement triggers on each ERP core table, all calling loomworks_capture_statement, replacing the row
-- triggers of 2001; 2010 reinstalls them with loomworks_install_capture. An update of res_users.login_date alone is not
-- captured: capturing every login would make each one a change outside any operation that blocks rewinds.

DO $install$
DECLARE
    t text;
    keys text[];
    skip text[];
BEGIN
    FOREACH t IN ARRAY ARRAY['ir_attachment', 'product_product', 'res_company', 'res_company_users_rel', 'res_country', 'res_groups', 'res_groups_users_rel', 'res_partner', 'res_users', 'sale_order', 'sale_order_line']::text[] LOOP
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
        skip := ARRAY(SELECT jsonb_array_elements_text(coalesce('{"res_users":["login_date"]}'::jsonb -> t, '[]')));
        EXECUTE format('DROP TRIGGER IF EXISTS loomworks_capture ON %I', t);
        EXECUTE format($create$CREATE OR REPLACE TRIGGER loomworks_capture_insert AFTER INSERT ON %1$I REFERENCING NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
CREATE OR REPLACE TRIGGER loomworks_capture_update AFTER UPDATE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows NEW TABLE AS loomworks_new_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
CREATE OR REPLACE TRIGGER loomworks_capture_delete AFTER DELETE ON %1$I REFERENCING OLD TABLE AS loomworks_old_rows FOR EACH STATEMENT EXECUTE FUNCTION loomworks_capture_statement(%2$L, %3$L);
$create$, t, keys::text, skip::text);
    END LOOP;
END
$install$;
