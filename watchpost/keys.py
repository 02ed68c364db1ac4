"""Every Redis key, stream and consumer-group name, in one place.

Each stream is declared once as a `StreamSpec`: its name under the deployment's prefix, the
message type (or union) it carries, its MAXLEN bound and the consumer groups that read it.
`Keys(prefix).alerts` is that stream under one prefix: a `Stream[AlertEvent]`, which is the
stream's name (a `str`, for plain Redis calls) that also knows its spec, so `publish` and
`GroupConsumer` take it alone and are typed by it.

Frames and verdicts are partitioned by camera: `Keys(prefix, shards).frames` is a
`ShardedStream[Frame]`, one `Stream[Frame]` per shard (`<prefix>:frames:<n>`); a camera's frames
and verdicts go to shard `shard_of(camera_id, shards)` of each, so every replica that owns a shard
sees all of its cameras' entries, in order.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
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


# Frames and verdicts are split into this many shards unless WATCHPOST_STREAM_SHARDS says
# otherwise: more than one replica needs, so replicas can be added without resharding.
DEFAULT_STREAM_SHARDS = 4


def shard_of(camera_id: str, shards: int) -> int:
    """The shard of a camera's frames and verdicts: the one place that maps cameras to shards."""
    return zlib.crc32(camera_id.encode()) % shards


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

    def sharded(self, prefix: str, shards: int) -> ShardedStream[M]:
        return ShardedStream(self, prefix, shards)


class Stream(str, Generic[M]):
    """A stream's name under one prefix, carrying its spec (the message type, bound, groups);
    `shard` is its number for one shard of a sharded stream (`<prefix>:<suffix>:<shard>`)."""

    spec: StreamSpec[M]
    prefix: str
    shard: int | None

    def __new__(cls, spec: StreamSpec[M], prefix: str, shard: int | None = None) -> Stream[M]:
        name = spec.name(prefix) if shard is None else f"{spec.name(prefix)}:{shard}"
        stream = super().__new__(cls, name)
        stream.spec = spec
        stream.prefix = prefix
        stream.shard = shard
        return stream

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy and pickle keep the spec
        return (self.spec, self.prefix, self.shard)

    @property
    def maxlen(self) -> int:
        return self.spec.maxlen

    @property
    def dead_letter(self) -> str:
        """Where entries of this stream that cannot be handled go."""
        return Keys(self.prefix).dead_letter


@dataclass(frozen=True)
class ShardedStream(Generic[M]):
    """A stream split by camera into `count` shards, each a `Stream[M]` of its own."""

    spec: StreamSpec[M]
    prefix: str
    count: int

    def shard(self, number: int) -> Stream[M]:
        if not 0 <= number < self.count:
            raise ValueError(f"{self.spec.suffix} has shards 0-{self.count - 1}, not {number}")
        return Stream(self.spec, self.prefix, number)

    def of(self, camera_id: str) -> Stream[M]:
        """The shard that carries this camera's entries."""
        return self.shard(shard_of(camera_id, self.count))

    @property
    def all(self) -> list[Stream[M]]:
        """Every shard, in order (for tools that read or trim the whole stream)."""
        return [self.shard(n) for n in range(self.count)]

    def __iter__(self) -> Iterator[Stream[M]]:
        return iter(self.all)

    @property
    def maxlen(self) -> int:
        return self.spec.maxlen


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
    shards: int = DEFAULT_STREAM_SHARDS  # services pass WATCHPOST_STREAM_SHARDS (settings.keys)

    @property
    def frames(self) -> ShardedStream[Frame]:
        """One frames stream per shard; a camera's frames go to `frames.of(camera_id)`."""
        return FRAMES.sharded(self.prefix, self.shards)

    @property
    def verdicts(self) -> ShardedStream[RecognitionVerdict | LivenessVerdict]:
        """One verdicts stream per shard, numbered as the frames: a camera's verdicts go to
        `verdicts.of(camera_id)`."""
        return VERDICTS.sharded(self.prefix, self.shards)

    @property
    def stream_shards(self) -> str:
        """Guard: the shard count the deployment's processes use (each checks it on start)."""
        return f"{self.prefix}:streams:shards"

    def shard_nodes(self, service: str) -> str:
        """Sorted set of a service's live replicas by last heartbeat (watchpost/leases.py)."""
        return f"{self.prefix}:shards:{service}:nodes"

    def shard_lease(self, service: str, shard: str) -> str:
        """The replica of a service that owns one shard, while it renews the lease."""
        return f"{self.prefix}:shards:{service}:lease:{shard}"

    def alert_published(self, alert_id: int) -> str:
        """Set when an alert went onto the alerts stream, so a redelivered verdict or a replica
        that took over publishes it at most once."""
        return f"{self.prefix}:alert:published:{alert_id}"

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
