using Loomworks.Security;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// The schema of a tenant database: the tables of <see cref="ModelRegistry"/> with Odoo's table and column names,
/// seeded with the countries, the company, the groups and their access rights, OdooBot (uid 1) and the admin (uid 2).
/// Tenant migrations use versions 1000–1999 for the ERP core.
/// </summary>
public sealed class TenantSchema : ITenantDatabaseSetup
{
    public const string SystemGroup = "base.group_system";
    public const string UserGroup = "base.group_user";
    public const string ReadOnlyGroup = "loomworks.group_readonly";

    public IReadOnlyList<Migration> Migrations => All;

    public static IReadOnlyList<Migration> All { get; } =
    [
        new(1000, "erp core tables", """
            CREATE TABLE res_country (
                id serial PRIMARY KEY, name varchar NOT NULL, code varchar(2) UNIQUE, phone_code integer,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE TABLE res_partner (
                id serial PRIMARY KEY, name varchar, complete_name varchar, parent_id integer REFERENCES res_partner ON DELETE SET NULL,
                ref varchar, lang varchar, tz varchar, user_id integer, vat varchar, website varchar, comment text,
                active boolean DEFAULT true, is_company boolean DEFAULT false, type varchar DEFAULT 'contact', function varchar,
                street varchar, street2 varchar, zip varchar, city varchar, country_id integer REFERENCES res_country ON DELETE SET NULL,
                email varchar, phone varchar, mobile varchar, employee boolean, color integer DEFAULT 0, company_id integer,
                customer_rank integer DEFAULT 0, supplier_rank integer DEFAULT 0, credit_limit double precision, image_1920 bytea,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE INDEX res_partner_parent_id_index ON res_partner (parent_id);
            CREATE INDEX res_partner_complete_name_index ON res_partner (complete_name);
            CREATE TABLE res_company (
                id serial PRIMARY KEY, name varchar NOT NULL UNIQUE, partner_id integer REFERENCES res_partner ON DELETE SET NULL,
                parent_id integer REFERENCES res_company ON DELETE SET NULL, sequence integer DEFAULT 10, email varchar, phone varchar,
                website varchar, vat varchar, street varchar, city varchar, zip varchar,
                country_id integer REFERENCES res_country ON DELETE SET NULL, active boolean DEFAULT true,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            ALTER TABLE res_partner ADD FOREIGN KEY (company_id) REFERENCES res_company ON DELETE SET NULL;
            CREATE TABLE res_groups (
                id serial PRIMARY KEY, name varchar NOT NULL, full_name varchar, comment text, share boolean DEFAULT false,
                xml_id varchar UNIQUE,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE TABLE res_users (
                id serial PRIMARY KEY, name varchar NOT NULL, login varchar NOT NULL UNIQUE, password varchar,
                partner_id integer NOT NULL REFERENCES res_partner ON DELETE RESTRICT, email varchar, lang varchar, tz varchar,
                signature text, active boolean DEFAULT true, share boolean DEFAULT false,
                company_id integer REFERENCES res_company ON DELETE SET NULL, login_date timestamp,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            ALTER TABLE res_partner ADD FOREIGN KEY (user_id) REFERENCES res_users ON DELETE SET NULL;
            CREATE TABLE res_groups_users_rel (
                gid integer NOT NULL REFERENCES res_groups ON DELETE CASCADE, uid integer NOT NULL REFERENCES res_users ON DELETE CASCADE,
                PRIMARY KEY (gid, uid));
            CREATE INDEX ON res_groups_users_rel (uid, gid);
            CREATE TABLE res_company_users_rel (
                cid integer NOT NULL REFERENCES res_company ON DELETE CASCADE, user_id integer NOT NULL REFERENCES res_users ON DELETE CASCADE,
                PRIMARY KEY (cid, user_id));
            CREATE INDEX ON res_company_users_rel (user_id, cid);
            CREATE TABLE res_users_apikeys (
                id serial PRIMARY KEY, name varchar NOT NULL, user_id integer NOT NULL REFERENCES res_users ON DELETE CASCADE,
                scope varchar, expiration_date timestamp, index varchar(8) NOT NULL, key varchar NOT NULL,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE INDEX res_users_apikeys_user_id_index_idx ON res_users_apikeys (user_id, index);
            CREATE TABLE ir_model_access (
                id serial PRIMARY KEY, name varchar NOT NULL, model varchar NOT NULL,
                group_id integer REFERENCES res_groups ON DELETE CASCADE,
                perm_read boolean NOT NULL DEFAULT false, perm_write boolean NOT NULL DEFAULT false,
                perm_create boolean NOT NULL DEFAULT false, perm_unlink boolean NOT NULL DEFAULT false);
            CREATE TABLE product_product (
                id serial PRIMARY KEY, name varchar NOT NULL, default_code varchar, barcode varchar UNIQUE, type varchar DEFAULT 'consu',
                list_price double precision DEFAULT 1.0, standard_price double precision DEFAULT 0, sale_ok boolean DEFAULT true,
                purchase_ok boolean DEFAULT true, description text, description_sale text, weight double precision,
                volume double precision, company_id integer REFERENCES res_company ON DELETE SET NULL, active boolean DEFAULT true,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE TABLE sale_order (
                id serial PRIMARY KEY, name varchar NOT NULL, partner_id integer NOT NULL REFERENCES res_partner ON DELETE RESTRICT,
                state varchar DEFAULT 'draft', date_order timestamp NOT NULL, validity_date date, client_order_ref varchar,
                origin varchar, note text, user_id integer REFERENCES res_users ON DELETE SET NULL,
                company_id integer REFERENCES res_company ON DELETE SET NULL,
                amount_untaxed numeric DEFAULT 0, amount_tax numeric DEFAULT 0, amount_total numeric DEFAULT 0,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE INDEX sale_order_partner_id_index ON sale_order (partner_id);
            CREATE TABLE sale_order_line (
                id serial PRIMARY KEY, order_id integer NOT NULL REFERENCES sale_order ON DELETE CASCADE, sequence integer DEFAULT 10,
                name text, product_id integer REFERENCES product_product ON DELETE RESTRICT,
                product_uom_qty double precision DEFAULT 1.0, price_unit double precision DEFAULT 0, discount double precision DEFAULT 0,
                price_subtotal numeric DEFAULT 0, price_total numeric DEFAULT 0,
                company_id integer REFERENCES res_company ON DELETE SET NULL,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE INDEX sale_order_line_order_id_index ON sale_order_line (order_id);
            CREATE TABLE ir_attachment (
                id serial PRIMARY KEY, name varchar NOT NULL, description text, res_model varchar, res_field varchar, res_id integer,
                company_id integer REFERENCES res_company ON DELETE SET NULL, type varchar DEFAULT 'binary', url varchar,
                public boolean, access_token varchar, store_fname varchar, file_size integer, checksum varchar(40), mimetype varchar,
                create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
            CREATE INDEX ir_attachment_res_idx ON ir_attachment (res_model, res_id);
            """),
        new(1001, "countries", CountrySeed.Sql),
        new(1002, "company, groups, access rights, OdooBot and the admin", """
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
            """),
        SecurityStamp.Migration,
        WebSessionSchema.Migration,
    ];

    public async Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(tenantDatabase);
        ArgumentException.ThrowIfNullOrWhiteSpace(login);
        if (Passwords.HashProblem(nameof(passwordHash), passwordHash, minimumRounds: 1) is { } problem)
        {
            throw new ArgumentException(problem, nameof(passwordHash));
        }
        await using var transaction = await tenantDatabase.BeginTransactionAsync(ct);
        // The admin is uid 2 as in Odoo: integrations written for Odoo sometimes assume it.
        await using (var command = new NpgsqlCommand("""
            UPDATE res_users SET login = $1, password = $2, active = true, write_date = now() at time zone 'utc',
                email = CASE WHEN $1 LIKE '%@%' THEN $1 ELSE email END
            WHERE id = 2
            """, tenantDatabase, transaction))
        {
            command.Parameters.AddWithValue(login);
            command.Parameters.AddWithValue(passwordHash);
            if (await command.ExecuteNonQueryAsync(ct) != 1)
            {
                throw new InvalidOperationException("the tenant schema has no admin user (uid 2); apply the migrations first");
            }
        }
        await using (var command = new NpgsqlCommand(
            "UPDATE res_partner SET email = $1 WHERE id = 3 AND $1 LIKE '%@%'", tenantDatabase, transaction))
        {
            command.Parameters.AddWithValue(login);
            await command.ExecuteNonQueryAsync(ct);
        }
        await transaction.CommitAsync(ct);
    }

    /// <summary>True when an active user has this login and password (not an API key: keys are for the API).</summary>
    public static async Task<bool> CheckPasswordAsync(NpgsqlConnection tenantDatabase, string login, string password, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT password FROM res_users WHERE login = $1 AND active", tenantDatabase);
        command.Parameters.AddWithValue(login);
        return await command.ExecuteScalarAsync(ct) is string hash && Passwords.Verify(password, hash);
    }

    public async Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM res_users WHERE active AND NOT share AND password IS NOT NULL", tenantDatabase);
        return (int)(long)(await command.ExecuteScalarAsync(ct))!;
    }
}
