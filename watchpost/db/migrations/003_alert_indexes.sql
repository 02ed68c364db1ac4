-- Filters the dashboard offers: by kind, by person, unacknowledged first.
CREATE INDEX alerts_kind_created_idx ON alerts (kind, created_at DESC);
CREATE INDEX alerts_identity_idx ON alerts (identity_id) WHERE identity_id IS NOT NULL;
CREATE INDEX alerts_unacknowledged_idx ON alerts (id DESC) WHERE acknowledged_at IS NULL;
