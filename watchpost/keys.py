"""Every Redis key, stream and consumer-group name, in one place."""

from __future__ import annotations

from dataclasses import dataclass

# Consumer groups: one per service that reads a stream.
RECOGNITION_GROUP = "recognition"
LIVENESS_GROUP = "liveness"
AGGREGATOR_GROUP = "aggregator"

# Frames are the only stream trimmed aggressively: old frames are worth nothing. Verdicts and
# alerts are trimmed far beyond anything a healthy consumer leaves unread.
FRAMES_MAXLEN = 500
VERDICTS_MAXLEN = 100_000
ALERTS_MAXLEN = 100_000
DEAD_LETTER_MAXLEN = 10_000
# The gallery's change log: recognition replicas read it from where they left off; one that
# finds it trimmed past its place reloads in full (in the background).
GALLERY_CHANGES_MAXLEN = 100_000


@dataclass(frozen=True)
class Keys:
    prefix: str = "wp"

    @property
    def frames(self) -> str:
        return f"{self.prefix}:frames"

    @property
    def verdicts(self) -> str:
        return f"{self.prefix}:verdicts"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def cameras_version(self) -> str:
        """Incremented whenever cameras change; capture reconciles its loops when it moves."""
        return f"{self.prefix}:cameras:version"

    def live_frame(self, camera_id: str) -> str:
        """The latest annotated JPEG of a camera, for the live view (expires when it stops)."""
        return f"{self.prefix}:live:{camera_id}"

    def track_label(self, camera_id: str, track_id: str) -> str:
        """What the aggregator knows of a track (name, liveness), drawn on the live view."""
        return f"{self.prefix}:label:{camera_id}:{track_id}"

    @property
    def every_track_label(self) -> str:
        """SCAN pattern matching every `track_label`."""
        return f"{self.prefix}:label:*"

    @property
    def every_live_frame(self) -> str:
        """SCAN pattern matching every `live_frame`."""
        return f"{self.prefix}:live:*"

    def cooldown(self, key: str) -> str:
        """Set while alerts of one kind are held back on a camera (see AlertPolicy)."""
        return f"{self.prefix}:cooldown:{key}"

    @property
    def gallery_version(self) -> str:
        """Incremented whenever enrolled faces change; recognition catches up when it moves."""
        return f"{self.prefix}:gallery:version"

    @property
    def gallery_changes(self) -> str:
        """Stream of `{identity: id}`, one entry per committed change of an identity's faces or
        name (enrolment, deletion, erasure, renaming), added with the version's increment."""
        return f"{self.prefix}:gallery:changes"
