-- migration 300: database manager jobs

CREATE TABLE loomworks_db_job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('restore', 'duplicate', 'drop', 'rename')),
    database_name text NOT NULL,
    source_name text,
    step text NOT NULL,
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'rolled_back')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX loomworks_db_job_one_running ON loomworks_db_job (database_name) WHERE state = 'running';
