using Loomworks.Postgres;

namespace Loomworks.Tenancy;

/// <summary>Tenancy's migrations of the management database (versions 101–199), listed in <see cref="ManagementSchema"/>.</summary>
public static class TenancySchema
{
    public static IReadOnlyList<Migration> Migrations { get; } =
    [
        new(101, "tenant jobs", """
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
            """),
        new(102, "tenant audit", """
            CREATE TABLE loomworks_tenant_event (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant_id bigint,
                subdomain text NOT NULL,
                event text NOT NULL,
                detail text NOT NULL DEFAULT '',
                actor text NOT NULL DEFAULT '',
                at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX loomworks_tenant_event_subdomain ON loomworks_tenant_event (subdomain, at);
            CREATE TABLE loomworks_audit_cross_tenant (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                credential_database text NOT NULL,
                routed_database text NOT NULL,
                credential_kind text NOT NULL,
                login text,
                client_address text,
                path text,
                refused boolean NOT NULL,
                at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX loomworks_audit_cross_tenant_at ON loomworks_audit_cross_tenant (at)
            """),
        new(103, "tenant ai usage", """
            CREATE TABLE loomworks_tenant_ai_usage (
                tenant_id bigint NOT NULL REFERENCES loomworks_tenant (id) ON DELETE CASCADE,
                day date NOT NULL,
                operations integer NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, day))
            """),
    ];
}
