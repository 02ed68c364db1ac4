-- Identities and their biometric data. Deleting an identity deletes its face samples (cascade);
-- alerts keep their record but lose the link to the person.
CREATE TABLE identities (
    id           bigserial PRIMARY KEY,
    display_name text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    login_name   text        UNIQUE CHECK (length(login_name) BETWEEN 1 AND 200),
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE face_samples (
    id          bigserial PRIMARY KEY,
    identity_id bigint      NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    embedding   real[]      NOT NULL CHECK (array_length(embedding, 1) = 128),
    box         integer[]   NOT NULL CHECK (array_length(box, 1) = 4),
    image_jpeg  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX face_samples_identity_idx ON face_samples (identity_id);

CREATE TABLE cameras (
    id            text        PRIMARY KEY,
    name          text        NOT NULL,
    source        text        NOT NULL,
    enabled       boolean     NOT NULL DEFAULT true,
    claimed_login text,
    status        text        NOT NULL DEFAULT 'unknown',
    fps           real,
    last_frame_at timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    kind             text        NOT NULL CHECK (kind IN
                        ('unknown_person', 'spoof_attempt', 'identity_mismatch', 'access_granted')),
    camera_id        text        NOT NULL,
    track_id         text        NOT NULL,
    identity_id      bigint      REFERENCES identities (id) ON DELETE SET NULL,
    display_name     text,
    claimed_login    text,
    distance         real,
    liveness         text        NOT NULL DEFAULT 'undecided',
    reason           text        NOT NULL DEFAULT '',
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    snapshot_jpeg    bytea,
    captured_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    -- The natural key: a redelivered verdict can never make a second alert.
    UNIQUE (camera_id, track_id, kind)
);
CREATE INDEX alerts_created_idx ON alerts (created_at DESC, id DESC);
