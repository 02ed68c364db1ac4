"""How far apart in time the liveness cues look, shared by the stream tracker (cameras) and the
burst endpoint (kiosks), so both read a face the same way."""

from __future__ import annotations

MOTION_LAG_S = 0.15  # the motion cue compares a frame with the camera's frame this much earlier
MOTION_MAX_LAG_S = 0.5  # ...but not with one older than this (a gap in the stream)
HISTORY_FRAMES = 32  # grey frames kept per camera for the motion cue
PASSIVE_EVERY = 3  # the passive check scores every 3rd frame of a track, as capture sends crops
