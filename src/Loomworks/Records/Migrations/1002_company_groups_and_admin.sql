-- migration 1002: company, groups, access rights, OdooBot and the admin

INSERT INTO res_partner (id, name, complete_name, is_company, active, create_date, write_date)
    VALUES (1, 'My Company', 'My Company', true, true, now() at time zone 'utc', now() at time zone 'utc'),
           (2, 'OdooBot', 'OdooBot', false, false, now() at time zone 'utc', now() at time zone 'utc'),
           (3, 'Administrator', 'Administrator', false, true, now() at time zone 'utc', now() at time zone 'utc');
SELECT setval(pg_get_serial_sequence('res_partner', 'id'), 3);
INSERT INTO res_company (id, name, partner_id, create_date, write_date)
    VALUES (1, 'My Company', 1, now() at time zone 'utc', now() at time zone 'utc');
SELECT setval(pg_get_serial_sequence('res_company', 'id'), 1);
UPDATE res_partner SET company_id = 1;
INSERT INTO res_groups (id, name, full_name, xml_id, share) VALUES
    (1, 'Access Rights', 'Administration / Access Rights', 'base.group_erp_manager', false),
    (2, 'Settings', 'Administration / Settings', 'base.group_system', false),
    (3, 'Internal User', 'User types / Internal User', 'base.group_user', false),
    (4, 'Read-only', 'User types / Read-only', 'loomworks.group_readonly', false);
SELECT setval(pg_get_serial_sequence('res_groups', 'id'), 4);
INSERT INTO res_users (id, name, login, partner_id, active, company_id, create_date, write_date)
    VALUES (1, 'OdooBot', '__system__', 2, false, 1, now() at time zone 'utc', now() at time zone 'utc'),
           (2, 'Administrator', 'admin', 3, true, 1, now() at time zone 'utc', now() at time zone 'utc');
SELECT setval(pg_get_serial_sequence('res_users', 'id'), 2);
INSERT INTO res_company_users_rel (cid, user_id) VALUES (1, 1), (1, 2);
INSERT INTO res_groups_users_rel (gid, uid) VALUES (1, 2), (2, 2), (3, 2);
INSERT INTO ir_model_access (name, model, group_id, perm_read, perm_write, perm_create, perm_unlink)
SELECT 'access_' || replace(m.model, '.', '_') || '_' || g.suffix, m.model, g.id, g.r,
       g.w AND m.writable, g.c AND m.writable, g.u AND m.writable
FROM (VALUES ('res.partner', true), ('product.product', true), ('sale.order', true), ('sale.order.line', true),
             ('ir.attachment', true), ('res.country', false), ('res.company', false), ('res.users', false),
             ('res.groups', false), ('res.users.apikeys', false)) AS m(model, writable)
CROSS JOIN (SELECT id, 'user' AS suffix, true AS r, true AS w, true AS c, true AS u FROM res_groups WHERE xml_id = 'base.group_user'
            UNION ALL
            SELECT id, 'readonly', true, false, false, false FROM res_groups WHERE xml_id = 'loomworks.group_readonly') AS g;
INSERT INTO ir_model_access (name, model, group_id, perm_read, perm_write, perm_create, perm_unlink)
SELECT 'access_' || replace(m, '.', '_') || '_system', m, g.id, true, true, true, true
FROM unnest(ARRAY['res.partner', 'product.product', 'sale.order', 'sale.order.line', 'ir.attachment', 'res.country',
                  'res.company', 'res.users', 'res.groups', 'res.users.apikeys']) AS m
CROSS JOIN res_groups g WHERE g.xml_id = 'base.group_system';
