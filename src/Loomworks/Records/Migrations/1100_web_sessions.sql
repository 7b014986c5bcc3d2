-- migration 1100: web sessions

CREATE TABLE loomworks_web_session (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    database_name varchar NOT NULL,
    uid integer NOT NULL REFERENCES res_users ON DELETE CASCADE,
    auth_fingerprint varchar NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    client_address varchar);
CREATE INDEX loomworks_web_session_uid_idx ON loomworks_web_session (uid);
CREATE INDEX loomworks_web_session_last_seen_idx ON loomworks_web_session (last_seen);
