"""Redis Streams done one way for every service.

- `publish` appends with `MAXLEN ~` so a stream's memory is bounded.
- `GroupConsumer` reads through a consumer group: it creates the group at start (tolerating only
  BUSYGROUP), re-reads its own pending entries after a restart, takes over entries another consumer
  left pending too long (`XAUTOCLAIM`), and dead-letters entries that are not valid messages or
  that failed too often, so nothing is retried forever and nothing is silently lost.
- Callers `ack` only after their work is durable.
- `trim_older_than` bounds streams by age as well (the dashboard runs it every minute), and
  `delete_entries` removes chosen entries (erasing a person).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar, cast

import redis
from prometheus_client import Counter
from redis.typing import EncodableT, FieldT

from watchpost.keys import DEAD_LETTER_MAXLEN, Group, Stream
from watchpost.messages import (
    ATTACHMENT_PREFIX,
    Message,
    MessageError,
    attachments,
    decode,
    encode,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

# An entry as our clients read it. redis-py types its replies as unions over `decode_responses`;
# the project never sets it, so keys, values and ids are always bytes. The casts below say so once.
Fields: TypeAlias = dict[bytes, bytes]
Entry: TypeAlias = tuple[bytes, Fields]


def entry_ms(entry_id: bytes) -> int:
    """When Redis added a stream entry: its id's milliseconds (Redis's clock)."""
    return int(entry_id.split(b"-")[0])


def _entries(raw: object) -> list[Entry]:
    """XRANGE's reply, or one stream's entries in an XREADGROUP/XAUTOCLAIM reply."""
    return cast(list[Entry], raw)


def _first_stream_entries(reply: object) -> list[Entry]:
    """The entries of the one stream an XREADGROUP read (none when it timed out)."""
    streams = cast(list[tuple[bytes, list[Entry]]] | None, reply)
    return streams[0][1] if streams else []


DEAD_LETTERED = Counter(
    "watchpost_dead_lettered_total", "Stream entries moved to the dead-letter stream", ["stream"]
)


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """One decoded stream entry handed to a worker: a message of the stream's type."""

    stream: str
    entry_id: bytes
    message: M
    image: bytes | None
    attachments: dict[str, bytes] = field(default_factory=dict)

    @property
    def picture(self) -> bytes:
        """The entry's image, for a message type that carries one (decoding made sure it is
        there); MessageError for one that carries none."""
        if self.image is None:
            raise MessageError(f"{type(self.message).__name__} carries no image")
        return self.image


def publish(
    client: redis.Redis,
    stream: Stream[M],
    message: M,
    *,
    image: bytes | None = None,
    attachments: dict[str, bytes] | None = None,
    maxlen: int | None = None,
) -> bytes:
    """Append `message` to `stream`, trimmed (approximately) to the stream's declared bound, or
    to `maxlen` where a deployment configures its own (capture's `capture_stream_maxlen`)."""
    encoded = encode(message, image, attachments)
    fields: dict[FieldT, EncodableT] = {key: value for key, value in encoded.items()}
    bound = stream.maxlen if maxlen is None else maxlen
    return cast(bytes, client.xadd(stream, fields, maxlen=bound, approximate=True))


# KEYS[1] the stream, KEYS[2] the marker; ARGV[1] the marker's TTL in s, ARGV[2] MAXLEN, then the
# entry's fields and values. Appends only when the marker was not set yet, in one step.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


def publish_once(
    client: redis.Redis,
    stream: Stream[M],
    message: M,
    *,
    marker: str,
    marker_seconds: int = 7 * 86_400,
    image: bytes | None = None,
) -> bytes | None:
    """`publish`, unless the same `marker` (a key naming this message, e.g. its alert id) was
    published within `marker_seconds`; atomic, so a message redelivered after a crash, or
    handled again by a replica that took a shard over, is on the stream once. The new entry's
    id, or None when it was there already."""
    encoded = encode(message, image)
    args: list[EncodableT] = [marker_seconds, stream.maxlen]
    for key, value in encoded.items():
        args += [key, value]
    script = client.register_script(_PUBLISH_ONCE)
    return cast(bytes | None, script(keys=[stream, marker], args=args))


def trim_older_than(client: redis.Redis, streams: Sequence[str], seconds: float) -> dict[str, int]:
    """Drop the entries added more than `seconds` ago (XTRIM MINID, exact), counted by Redis's
    own clock, which is what stamps entry ids; returns how many went from each stream."""
    now_s, now_us = client.time()
    cutoff_ms = max(0, int(now_s * 1000 + now_us // 1000 - seconds * 1000))
    return {
        stream: client.xtrim(stream, minid=f"{cutoff_ms}-0", approximate=False)
        for stream in streams
    }


def delete_entries(
    client: redis.Redis,
    stream: str,
    matches: Callable[[Fields], bool],
    *,
    batch: int = 200,
) -> int:
    """XDEL every entry whose fields `matches`, reading the stream in batches; returns how many.
    An entry deleted while pending in a group comes back to its consumer empty, which
    GroupConsumer acknowledges and skips."""
    deleted, start = 0, "-"
    while True:
        entries = _entries(client.xrange(stream, min=start, max="+", count=batch))
        doomed = [entry_id for entry_id, fields in entries if matches(fields)]
        if doomed:
            deleted += client.xdel(stream, *doomed)
        if len(entries) < batch:
            return deleted
        start = "(" + entries[-1][0].decode()  # exclusive: after the last one read


def ensure_group(client: redis.Redis, stream: str, group: str, start_id: str = "0") -> None:
    """Create the group if missing: from the stream's start ("0"), or for new entries only ("$")."""
    try:
        client.xgroup_create(stream, group, id=start_id, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class GroupConsumer(Generic[M]):
    """Reads `stream` as `group` (one the stream's spec declares), decoding its spec's type."""

    def __init__(
        self,
        client: redis.Redis,
        stream: Stream[M],
        *,
        group: Group,
        consumer: str,
        claim_idle_ms: int = 30_000,
        max_failures: int = 3,
        start_id: str = "0",
    ) -> None:
        if group not in stream.spec.groups:
            raise ValueError(f"group {group!r} does not read {stream.spec.suffix!r}")
        self.client = client
        self.stream = stream
        self.group = str(group)
        self.consumer = consumer
        self.adapter = stream.spec.adapter
        self.dead_letter_stream = stream.dead_letter
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures
        self.start_id = start_id
        self._own_pending_done = False
        self._claim_cursor = b"0-0"
        self._failures: dict[bytes, int] = {}

    def start(self) -> None:
        ensure_group(self.client, self.stream, self.group, self.start_id)

    def read(self, *, count: int = 16, block_ms: int | None = 1000) -> list[Delivery[M]]:
        """Up to `count` deliveries; waits up to `block_ms` for new ones (None: does not wait)."""
        entries = self._own_pending(count) or self._claim_stale(count)
        if not entries:
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
            entries = _first_stream_entries(reply)
        return self.decode_all(entries)

    def settle(self, delivery: Delivery[M]) -> None:
        """The delivery is handled: ack it."""
        self.ack([delivery.entry_id])

    def close(self) -> None:
        """Nothing to give back: a plain group consumer holds no lease."""

    def ack(self, entry_ids: Iterable[bytes]) -> None:
        ids = list(entry_ids)
        if ids:
            self.client.xack(self.stream, self.group, *ids)
            for entry_id in ids:
                self._failures.pop(entry_id, None)

    def failed(self, delivery: Delivery[M], error: BaseException) -> None:
        """Record a handler failure; after `max_failures` the entry goes to the dead letters."""
        count = self._failures.get(delivery.entry_id, 0) + 1
        self._failures[delivery.entry_id] = count
        if count >= self.max_failures:
            fields = {b"data": delivery.message.model_dump_json().encode()}
            self._dead_letter(delivery.entry_id, fields, f"handler failed {count}x: {error!r}")
        else:
            self.redeliver_pending()

    def redeliver_pending(self) -> None:
        """Read this consumer's unacked entries again before any new ones."""
        self._own_pending_done = False

    def _own_pending(self, count: int) -> list[Entry]:
        """After a restart, entries delivered to this consumer name but never acked."""
        if self._own_pending_done:
            return []
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
        raw = _first_stream_entries(reply)
        # An entry trimmed from the stream while pending comes back without fields: nothing is
        # left to process, so ack it rather than meet it again on every restart.
        trimmed = [entry_id for entry_id, fields in raw if not fields]
        if trimmed:
            self.client.xack(self.stream, self.group, *trimmed)
        if not raw:
            self._own_pending_done = True
        return [e for e in raw if e[1]]

    def _claim_stale(self, count: int) -> list[Entry]:
        """Entries another consumer took and left pending for too long (it probably died)."""
        reply = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        cursor, claimed = cast(tuple[bytes, list[Entry]], reply)[:2]
        self._claim_cursor = cursor
        # Entries trimmed away while pending come back empty; XAUTOCLAIM already dropped them.
        return [e for e in _entries(claimed) if e[1]]

    def decode_all(self, entries: list[Entry]) -> list[Delivery[M]]:
        """Entries read from this consumer's stream as deliveries; an entry that does not decode
        goes to the dead letters with the reason (it is never handed to a handler)."""
        deliveries: list[Delivery[M]] = []
        for entry_id, fields in entries:
            try:
                message, image = decode(fields, self.adapter)
            except MessageError as exc:
                self._dead_letter(entry_id, fields, str(exc))
                continue
            extra = attachments(message, fields)
            deliveries.append(Delivery(self.stream, entry_id, message, image, extra))
        return deliveries

    def _dead_letter(self, entry_id: bytes, fields: Fields, reason: str) -> None:
        log.warning(
            "dead-lettering %s %s: %s",
            self.stream,
            entry_id.decode(),
            reason,
            extra={"stream": self.stream, "entry_id": entry_id.decode()},
        )
        # Pictures stay out of the dead letters: they are biometric data nobody will replay.
        record: dict[FieldT, EncodableT] = {
            k: v for k, v in fields.items() if k != b"image" and not k.startswith(ATTACHMENT_PREFIX)
        }
        record.update(
            {
                b"source_stream": self.stream.encode(),
                b"source_id": entry_id,
                b"group": self.group.encode(),
                b"reason": reason.encode()[:2000],
                b"dead_at": str(time.time()).encode(),
            }
        )
        pipe = self.client.pipeline()
        pipe.xadd(self.dead_letter_stream, record, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        self._failures.pop(entry_id, None)
        DEAD_LETTERED.labels(self.stream).inc()
