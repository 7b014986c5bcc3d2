-- migration 200: snapshots

CREATE TABLE loomworks_snapshot (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES loomworks_tenant (id) ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'failed', 'expired')),
    wal_position pg_lsn NOT NULL,
    wal_file text NOT NULL,
    restore_point text NOT NULL UNIQUE,
    base_backup_id text,
    snapshot_type text NOT NULL CHECK (snapshot_type IN ('auto', 'manual', 'pre_ai')),
    size_bytes bigint,
    expires_at timestamptz NOT NULL);
CREATE INDEX loomworks_snapshot_tenant ON loomworks_snapshot (tenant_id, created_at);
CREATE TABLE loomworks_backup_set (
    label text PRIMARY KEY,
    backup_type text NOT NULL,
    started_at timestamptz NOT NULL,
    stopped_at timestamptz NOT NULL,
    start_lsn pg_lsn NOT NULL,
    stop_lsn pg_lsn NOT NULL,
    size_bytes bigint NOT NULL);
