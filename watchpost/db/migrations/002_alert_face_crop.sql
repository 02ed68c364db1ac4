-- The face as the camera saw it (a crop of the raw frame, no box drawn), so an operator can
-- enrol "that unknown person" straight from an alert.
ALTER TABLE alerts ADD COLUMN face_jpeg bytea;
