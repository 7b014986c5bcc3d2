-- migration 101: tenant jobs

CREATE TABLE loomworks_tenant_job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint,
    subdomain text NOT NULL,
    database_name text NOT NULL,
    role_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('provision')),
    step text NOT NULL,
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'rolled_back', 'failed')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX loomworks_tenant_job_running ON loomworks_tenant_job (id) WHERE state = 'running';
ALTER TABLE loomworks_tenant ADD COLUMN role_name text
