-- migration 201: restore jobs

CREATE TABLE loomworks_restore_job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES loomworks_tenant (id),
    source_database text NOT NULL,
    target_database text NOT NULL,
    as_subdomain text,
    target_type text NOT NULL CHECK (target_type IN ('name', 'time', 'lsn')),
    target text NOT NULL,
    snapshot_id bigint,
    backup_set text,
    include_only boolean NOT NULL DEFAULT true,
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed', 'undoing', 'undone')),
    step integer NOT NULL DEFAULT 0,
    step_name text NOT NULL DEFAULT 'queued',
    progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error text,
    scratch_dir text,
    new_database text NOT NULL,
    aside_database text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    aside_dropped_at timestamptz);
CREATE UNIQUE INDEX loomworks_restore_job_one_per_tenant ON loomworks_restore_job (tenant_id)
    WHERE state IN ('running', 'undoing');
