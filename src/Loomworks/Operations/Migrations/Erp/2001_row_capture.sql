-- migration 2001: change capture on the ERP core's tables
-- Row-level capture triggers on the ERP core's tables, replaced by the statement triggers of 2004. An update of
-- res_users.login_date alone is not captured: a login is bookkeeping, not a business change.

DO $install$
DECLARE
    t text;
    keys text[];
    events text;
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
        events := 'INSERT OR UPDATE OR DELETE';
        IF '{"res_users":["login_date"]}'::jsonb ? t THEN
            SELECT 'INSERT OR DELETE OR UPDATE OF ' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO events
            FROM pg_attribute a
            WHERE a.attrelid = format('public.%I', t)::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND NOT ('{"res_users":["login_date"]}'::jsonb -> t) ? a.attname;
        END IF;
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %I FOR EACH ROW EXECUTE FUNCTION loomworks_capture_change(%s)',
            'loomworks_capture', events, t, (SELECT string_agg(quote_literal(k), ', ') FROM unnest(keys) k));
    END LOOP;
END
$install$;
