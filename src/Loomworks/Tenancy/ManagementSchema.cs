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
    ];
}
