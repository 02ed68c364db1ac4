-- Who may do what. An API key is `wp_<key_id>_<secret>`; only an argon2id hash of the secret is
-- stored, so the key is shown once, when it is created.
CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    key_id       text        NOT NULL UNIQUE CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_hash  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Who enrolled, deleted, acknowledged, changed cameras, logged in. Rows are only ever added.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL,
    target_type text,
    target_id   text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    client      text
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
