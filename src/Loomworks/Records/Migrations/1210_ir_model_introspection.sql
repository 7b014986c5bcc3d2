-- migration 1210: ir.model and ir.model.fields, filled from the model registry when first read

CREATE TABLE ir_model (
    id serial PRIMARY KEY, model varchar NOT NULL UNIQUE, name varchar NOT NULL, info text, "order" varchar,
    state varchar NOT NULL DEFAULT 'base', transient boolean NOT NULL DEFAULT false,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
CREATE TABLE ir_model_fields (
    id serial PRIMARY KEY, name varchar NOT NULL, complete_name varchar, model varchar NOT NULL,
    model_id integer NOT NULL REFERENCES ir_model ON DELETE CASCADE, field_description varchar NOT NULL, help text,
    ttype varchar NOT NULL, relation varchar, relation_field varchar, relation_table varchar, column1 varchar, column2 varchar,
    required boolean NOT NULL DEFAULT false, readonly boolean NOT NULL DEFAULT false, store boolean NOT NULL DEFAULT true,
    selectable boolean NOT NULL DEFAULT true, state varchar NOT NULL DEFAULT 'base',
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp,
    UNIQUE (model, name));
CREATE INDEX ir_model_fields_model_id_index ON ir_model_fields (model_id);
INSERT INTO ir_model_access (name, model, group_id, perm_read, perm_write, perm_create, perm_unlink)
SELECT 'access_' || replace(m, '.', '_') || '_' || g.xml_id, m, g.id, true, false, false, false
FROM unnest(ARRAY['ir.model', 'ir.model.fields']) AS m
CROSS JOIN res_groups g WHERE g.xml_id IN ('base.group_user', 'loomworks.group_readonly', 'base.group_system');
