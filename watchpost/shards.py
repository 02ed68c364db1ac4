"""Stream shards: the guard on their count, and each replica's share of them.

Frames and verdicts are one stream per shard (`watchpost/keys.py`, `shard_of`). Each replica of
recognition, liveness and the aggregator owns some shards through leases (`watchpost/leases.py`,
one lease per (service, shard)) and reads only those, as its service's consumer group, under a
consumer name of its own. When it takes a shard (at start, from a replica that stopped and gave
it back, or from one that died and whose lease expired), it first
1. claims every entry the group still has pending on that shard, whatever their idle time: the
   lease makes it the shard's only reader, so nobody else is working on them;
2. hands the shard's recent entries that were already handled (the last `shard_replay_seconds`
   up to the group's last-delivered id, less the pending ones) to the service's `take_over`,
   which rebuilds its per-track state from them and emits nothing;
3. then processes the claimed entries as its own pending ones, and goes on with new entries.
So a track's state survives the replica that held it, and nothing it had not finished is lost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar, cast

import redis

from watchpost.keys import Group, Keys, ShardedStream, Stream
from watchpost.leases import Leases
from watchpost.messages import Message, MessageError, attachments, decode
from watchpost.streams import Delivery, Entry, GroupConsumer

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


class ShardCountMismatch(RuntimeError):
    """This process was configured with a shard count other than the deployment's."""


def check_shard_count(client: redis.Redis, keys: Keys) -> None:
    """Record this deployment's shard count in Redis, or refuse one that differs from it."""
    client.set(keys.stream_shards, keys.shards, nx=True)
    found = cast(bytes | None, client.get(keys.stream_shards))
    if found is not None and int(found) != keys.shards:
        raise ShardCountMismatch(
            f"WATCHPOST_STREAM_SHARDS is {keys.shards}, but this deployment's streams use "
            f"{int(found)} shards (Redis key {keys.stream_shards}). Set the same count on every "
            "process; to reshard, stop every service, let the streams drain, and delete that key."
        )


class ShardState(Protocol[M]):
    """What a service keeps per track, for the shards its replica owns."""

    def take_over(self, shard: int, replay: Sequence[Delivery[M]]) -> None:
        """This replica now owns `shard`: drop anything held about its cameras and rebuild it
        from `replay` (entries already handled, oldest first) without emitting anything."""

    def give_up(self, shard: int) -> None:
        """This replica no longer owns `shard`: forget its cameras."""


class ShardedConsumer(Generic[M]):
    """Reads the shards of `streams` this replica owns, as `group`; the same interface as
    `GroupConsumer`, so `StreamWorker` runs either."""

    def __init__(
        self,
        client: redis.Redis,
        streams: ShardedStream[M],
        *,
        group: Group,
        service: str,
        consumer: str,
        state: ShardState[M] | None = None,
        lease_seconds: float = 10.0,
        replay_seconds: float = 300.0,
        claim_idle_ms: int = 30_000,
        max_failures: int = 3,
        start_id: str = "0",
    ) -> None:
        if group not in streams.spec.groups:
            raise ValueError(f"group {group!r} does not read {streams.spec.suffix!r}")
        self.client = client
        self.streams = streams
        self.group = group
        self.consumer = consumer
        self.state = state
        self.keys = Keys(streams.prefix, streams.count)
        self.leases = Leases(
            client,
            nodes_key=self.keys.shard_nodes(service),
            lease_key=lambda shard: self.keys.shard_lease(service, shard),
            node_id=consumer,
            ttl_seconds=lease_seconds,
        )
        self.check_every_s = lease_seconds / 5
        self.replay_seconds = replay_seconds
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures
        self.start_id = start_id
        self.consumers: dict[int, GroupConsumer[M]] = {}
        self._checked_at = -math.inf
        self._turn = 0

    @property
    def owned(self) -> list[int]:
        return sorted(self.consumers)

    def start(self) -> None:
        check_shard_count(self.client, self.keys)
        self.join()
        self.rebalance()

    def join(self) -> int:
        """Beat once (so replicas that start together count each other); how many live."""
        return self.leases.heartbeat()

    def rebalance(self) -> None:
        """Renew, give back beyond the fair share, take free shards (taking each over)."""
        held = {str(shard) for shard in self.consumers}
        kept, released = self.leases.rebalance((str(n) for n in range(self.streams.count)), held)
        for shard in sorted(held - kept):  # given back, or lost to a lease that expired
            self._give_up(int(shard), reason="given back" if shard in released else "lost")
        for shard in sorted(kept - held, key=int):
            self._take_over(int(shard))
        self._checked_at = time.monotonic()

    def close(self) -> None:
        """A clean stop: give every shard back at once, so others need not wait for a TTL."""
        for shard in list(self.consumers):
            self.leases.release(str(shard))
            self._give_up(shard, reason="stopping")
        self.leases.leave()

    def read(self, *, count: int = 16, block_ms: int | None = 1000) -> list[Delivery[M]]:
        if time.monotonic() - self._checked_at >= self.check_every_s:
            self.rebalance()
        shards = self.owned
        if not shards:
            if block_ms:
                time.sleep(min(block_ms / 1000, self.check_every_s))
            return []
        self._turn = (self._turn + 1) % len(shards)
        for shard in shards[self._turn :] + shards[: self._turn]:  # no shard waits on another
            deliveries = self.consumers[shard].read(count=count, block_ms=None)
            if deliveries:
                return deliveries
        if block_ms is None:
            return []
        block = max(1, min(block_ms, round(self.check_every_s * 1000)))
        reply = self.client.xreadgroup(
            str(self.group),
            self.consumer,
            {self.streams.shard(s): ">" for s in shards},
            count=count,
            block=block,
        )
        found: list[Delivery[M]] = []
        for name, entries in cast(list[tuple[bytes, list[Entry]]] | None, reply) or []:
            shard = int(name.decode().rsplit(":", 1)[1])
            found += self.consumers[shard].decode_all(entries)
        return found

    def settle(self, delivery: Delivery[M]) -> None:
        """The delivery is handled: ack it on its shard."""
        consumer = self._consumer_of(delivery)
        if consumer is not None:
            consumer.ack([delivery.entry_id])
        else:  # given back meanwhile: the entry is done all the same
            self.client.xack(delivery.stream, str(self.group), delivery.entry_id)

    def failed(self, delivery: Delivery[M], error: BaseException) -> None:
        consumer = self._consumer_of(delivery)
        if consumer is not None:
            consumer.failed(delivery, error)

    def redeliver_pending(self) -> None:
        for consumer in self.consumers.values():
            consumer.redeliver_pending()

    def _consumer_of(self, delivery: Delivery[M]) -> GroupConsumer[M] | None:
        shard = getattr(delivery.stream, "shard", None)
        if shard is None:
            shard = int(str(delivery.stream).rsplit(":", 1)[1])
        return self.consumers.get(shard)

    # -- taking a shard over ---------------------------------------------------------------------
    def _take_over(self, shard: int) -> None:
        stream = self.streams.shard(shard)
        consumer = GroupConsumer(
            self.client,
            stream,
            group=self.group,
            consumer=self.consumer,
            claim_idle_ms=self.claim_idle_ms,
            max_failures=self.max_failures,
            start_id=self.start_id,
        )
        consumer.start()
        claimed = self._claim_pending(stream)
        replay = self._replay(stream, exclude=claimed)
        if self.state is not None:
            self.state.take_over(shard, replay)
        consumer.redeliver_pending()  # the claimed entries come first, then new ones
        self.consumers[shard] = consumer
        self._drop_idle_consumers(stream)
        log.info(
            "%s: took shard %d (%d pending claimed, %d handled entries replayed)",
            self.consumer,
            shard,
            len(claimed),
            len(replay),
        )

    def _give_up(self, shard: int, *, reason: str) -> None:
        self.consumers.pop(shard, None)
        if self.state is not None:
            self.state.give_up(shard)
        log.info("%s: shard %d %s", self.consumer, shard, reason)

    def _claim_pending(self, stream: Stream[M]) -> set[bytes]:
        """Every entry the group has pending on this shard, now this consumer's (idle or not)."""
        claimed: set[bytes] = set()
        cursor: bytes | str = "0-0"
        while True:
            reply = self.client.xautoclaim(
                stream, str(self.group), self.consumer, min_idle_time=0, start_id=cursor, count=100
            )
            cursor, entries = cast(tuple[bytes, list[Entry]], reply)[:2]
            claimed.update(entry_id for entry_id, _ in entries)
            if cursor in (b"0-0", "0-0"):
                return claimed

    def _replay(self, stream: Stream[M], *, exclude: set[bytes]) -> list[Delivery[M]]:
        """The shard's entries of the last `replay_seconds` that the group had already handled
        (delivered, up to its last-delivered id, and not pending), decoded, oldest first."""
        if self.replay_seconds <= 0:
            return []
        groups = cast(list[dict[str, object]], self.client.xinfo_groups(stream))
        mine = next((g for g in groups if _text(g["name"]) == str(self.group)), None)
        last = _text(mine["last-delivered-id"]) if mine else "0-0"
        if last == "0-0":
            return []
        now_s, now_us = self.client.time()
        start = f"{max(0, int(now_s * 1000 + now_us // 1000 - self.replay_seconds * 1000))}-0"
        replay: list[Delivery[M]] = []
        while True:
            raw = self.client.xrange(stream, min=start, max=last, count=500)
            entries = cast(list[Entry], raw)
            for entry_id, fields in entries:
                if entry_id in exclude:
                    continue
                try:
                    message, image = decode(fields, stream.spec.adapter)
                except MessageError:  # dead-lettered when it was first read
                    continue
                extra = attachments(message, fields)
                replay.append(Delivery(stream, entry_id, message, image, extra))
            if len(entries) < 500:
                return replay
            start = "(" + entries[-1][0].decode()

    def _drop_idle_consumers(self, stream: Stream[M]) -> None:
        """Forget consumers of the group with nothing pending (replicas gone before)."""
        consumers = cast(
            list[dict[str, object]], self.client.xinfo_consumers(stream, str(self.group))
        )
        for info in consumers:
            name = _text(info["name"])
            if name != self.consumer and int(cast(int, info["pending"])) == 0:
                self.client.xgroup_delconsumer(stream, str(self.group), name)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
