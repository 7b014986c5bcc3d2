-- migration 102: tenant audit

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
