-- Who was seen where: one sighting per track the aggregator saw identified (known or not). A
-- sighting is a record, not an alarm. Unknown faces of several tracks or cameras that are close
-- to each other form one unknown group, which a guard can name once.
CREATE TABLE unknown_groups (
    id                bigserial PRIMARY KEY,
    -- Set once the group is named: its faces were enrolled into this identity. Erasing the
    -- identity deletes the group.
    named_identity_id bigint      REFERENCES identities (id) ON DELETE CASCADE,
    named_at          timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sightings (
    id            bigserial PRIMARY KEY,
    camera_id     text        NOT NULL,
    track_id      text        NOT NULL,
    -- The track's vote; NULL for an unknown face. Erasing the person deletes their sightings.
    identity_id   bigint      REFERENCES identities (id) ON DELETE CASCADE,
    group_id      bigint      REFERENCES unknown_groups (id) ON DELETE SET NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    checks        integer     NOT NULL CHECK (checks >= 0),  -- recognition verdicts in all
    votes         integer     NOT NULL CHECK (votes >= 0),   -- ...that agree with the vote
    best_distance real,
    liveness      text        NOT NULL DEFAULT 'undecided',
    ended         boolean     NOT NULL DEFAULT false,
    face_width    integer,
    quality       real,
    box           integer[]   CHECK (box IS NULL OR array_length(box, 1) = 4),
    -- The best frame of the track with its face box drawn (no name), and the raw face crop.
    snapshot_jpeg bytea,
    face_jpeg     bytea,
    -- Unknown faces only: the mean embedding of the track's unknown checks, for grouping.
    embedding     real[]      CHECK (embedding IS NULL OR array_length(embedding, 1) = 128),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (camera_id, track_id)
);
CREATE INDEX sightings_last_seen_idx ON sightings (last_seen DESC, id DESC);
CREATE INDEX sightings_identity_idx ON sightings (identity_id, last_seen DESC)
    WHERE identity_id IS NOT NULL;
CREATE INDEX sightings_group_idx ON sightings (group_id) WHERE group_id IS NOT NULL;

-- The same person at two cameras at once, or sooner than one can walk between them.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN
    ('unknown_person', 'spoof_attempt', 'identity_mismatch', 'access_granted',
     'impossible_travel'));
