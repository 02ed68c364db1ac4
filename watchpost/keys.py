"""Every Redis key, stream and consumer-group name, in one place.

Each stream is declared once as a `StreamSpec`: its name under the deployment's prefix, the
message type (or union) it carries, its MAXLEN bound and the consumer groups that read it.
`Keys(prefix).frames` is that stream under one prefix: a `Stream[Frame]`, which is the stream's
name (a `str`, for plain Redis calls) that also knows its spec, so `publish` and `GroupConsumer`
take it alone and are typed by it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from watchpost.messages import (
    AlertEvent,
    Frame,
    GalleryChange,
    LivenessVerdict,
    Message,
    RecognitionVerdict,
    Verdict,
)

M = TypeVar("M", bound=Message)


class Group(StrEnum):
    """Consumer groups: one per service that reads a stream."""

    RECOGNITION = "recognition"
    LIVENESS = "liveness"
    AGGREGATOR = "aggregator"
    NOTIFIER = "notifier"  # the dashboard's webhooks
    MQTT = "mqtt"  # the dashboard's MQTT bridge


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
class StreamSpec(Generic[M]):
    """One stream, declared once: `<prefix>:<suffix>`, carrying messages of type `M`."""

    suffix: str
    adapter: TypeAdapter[M] = field(repr=False, compare=False)
    maxlen: int = field(default=0)
    groups: tuple[Group, ...] = ()

    def name(self, prefix: str) -> str:
        return f"{prefix}:{self.suffix}"

    def under(self, prefix: str) -> Stream[M]:
        return Stream(self, prefix)


class Stream(str, Generic[M]):
    """A stream's name under one prefix, carrying its spec (the message type, bound, groups)."""

    spec: StreamSpec[M]
    prefix: str

    def __new__(cls, spec: StreamSpec[M], prefix: str) -> Stream[M]:
        stream = super().__new__(cls, spec.name(prefix))
        stream.spec = spec
        stream.prefix = prefix
        return stream

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy and pickle keep the spec
        return (self.spec, self.prefix)

    @property
    def maxlen(self) -> int:
        return self.spec.maxlen

    @property
    def dead_letter(self) -> str:
        """Where entries of this stream that cannot be handled go."""
        return Keys(self.prefix).dead_letter


FRAMES: StreamSpec[Frame] = StreamSpec(
    "frames", TypeAdapter(Frame), FRAMES_MAXLEN, (Group.RECOGNITION, Group.LIVENESS)
)
VERDICTS: StreamSpec[RecognitionVerdict | LivenessVerdict] = StreamSpec(
    "verdicts", TypeAdapter(Verdict), VERDICTS_MAXLEN, (Group.AGGREGATOR,)
)
# The dashboard's broadcaster reads alerts with plain XREAD (every replica sends every alert to
# its own websockets); the webhook notifier and the MQTT bridge read through groups.
ALERTS: StreamSpec[AlertEvent] = StreamSpec(
    "alerts", TypeAdapter(AlertEvent), ALERTS_MAXLEN, (Group.NOTIFIER, Group.MQTT)
)
# Read whole (XRANGE) by every recognition replica from its own place, so it needs no group.
GALLERY_CHANGES: StreamSpec[GalleryChange] = StreamSpec(
    "gallery:changes", TypeAdapter(GalleryChange), GALLERY_CHANGES_MAXLEN
)


@dataclass(frozen=True)
class Keys:
    prefix: str = "wp"

    @property
    def frames(self) -> Stream[Frame]:
        return FRAMES.under(self.prefix)

    @property
    def verdicts(self) -> Stream[RecognitionVerdict | LivenessVerdict]:
        return VERDICTS.under(self.prefix)

    @property
    def alerts(self) -> Stream[AlertEvent]:
        return ALERTS.under(self.prefix)

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def cameras_version(self) -> str:
        """Incremented whenever cameras change; capture reconciles its loops when it moves."""
        return f"{self.prefix}:cameras:version"

    @property
    def capture_nodes(self) -> str:
        """Sorted set of capture nodes by their last heartbeat (services/capture/leases.py)."""
        return f"{self.prefix}:capture:nodes"

    def camera_lease(self, camera_id: str) -> str:
        """The capture node that runs a camera, while it renews the lease."""
        return f"{self.prefix}:capture:lease:{camera_id}"

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

    def passive_calibration(self, camera_id: str) -> str:
        """A camera's recent real presentations' passive scores (newest first), from which
        liveness fits the camera's own passive threshold (services/liveness/calibration.py)."""
        return f"{self.prefix}:liveness:calibration:{camera_id}"

    @property
    def gallery_version(self) -> str:
        """Incremented whenever enrolled faces change; recognition catches up when it moves."""
        return f"{self.prefix}:gallery:version"

    @property
    def mqtt_discovered(self) -> str:
        """Set of the cameras whose Home Assistant discovery configs the MQTT bridge published,
        so it can remove them (empty retained payloads) when a camera is deleted."""
        return f"{self.prefix}:mqtt:discovered"

    @property
    def mqtt_poller(self) -> str:
        """Lease held by the one dashboard replica that polls sightings and cameras for MQTT."""
        return f"{self.prefix}:mqtt:poller"

    def session(self, token: str) -> str:
        """A page sign-in: Redis holds the sha256 of the cookie's token, never the token."""
        return f"{self.prefix}:session:{hashlib.sha256(token.encode()).hexdigest()}"

    def auth_failures(self, address: str) -> str:
        """Failed API-key attempts from one client address (a fixed window)."""
        return f"{self.prefix}:authfail:{address}"

    def rate_limit(self, bucket: str, who: str) -> str:
        """A fixed-window request counter of one limit (`bucket`) for one caller."""
        return f"{self.prefix}:ratelimit:{bucket}:{who}"

    @property
    def gallery_changes(self) -> Stream[GalleryChange]:
        """One entry per committed change of an identity's faces or name, added with the
        version's increment."""
        return GALLERY_CHANGES.under(self.prefix)
