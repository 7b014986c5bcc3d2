-- migration 1000: erp core tables

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
