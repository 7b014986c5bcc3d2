using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>
/// Migrations of the management database. Each feature owns a range of versions and adds its migrations to its own
/// list here: Tenancy 100–199, Snapshots 200–299, Backups 300–399, Operations 400–499, Ai 500–599.
/// </summary>
public static class ManagementSchema
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(1, "settings", """
            CREATE TABLE loomworks_settings (
                key text PRIMARY KEY,
                value text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())
            """),
        new(100, "tenants", """
            CREATE TABLE loomworks_tenant (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name text NOT NULL,
                subdomain text NOT NULL UNIQUE,
                database_name text NOT NULL UNIQUE,
                state text NOT NULL DEFAULT 'draft'
                    CHECK (state IN ('draft', 'provisioning', 'active', 'suspended', 'archived', 'restoring')),
                tier text NOT NULL DEFAULT 'standard',
                max_users integer NOT NULL DEFAULT 10 CHECK (max_users >= 0),
                max_storage_gb integer NOT NULL DEFAULT 10 CHECK (max_storage_gb >= 0),
                max_ai_operations_daily integer NOT NULL DEFAULT 1000 CHECK (max_ai_operations_daily >= 0),
                subscription_expires timestamptz,
                database_server text NOT NULL DEFAULT 'default',
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now())
            """),
        .. TenancySchema.Migrations,
        new(300, "database manager jobs", """
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
            """),
        new(200, "snapshots", """
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
            """),
        new(201, "restore jobs", """
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
            """),
    ];
}
