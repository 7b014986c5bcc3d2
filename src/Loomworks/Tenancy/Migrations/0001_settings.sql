-- migration 1: settings

CREATE TABLE loomworks_settings (
    key text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now())
