-- migration 100: tenants

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
