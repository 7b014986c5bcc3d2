-- migration 103: tenant ai usage

CREATE TABLE loomworks_tenant_ai_usage (
    tenant_id bigint NOT NULL REFERENCES loomworks_tenant (id) ON DELETE CASCADE,
    day date NOT NULL,
    operations integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day))
