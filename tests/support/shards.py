"""Reading a sharded stream (frames, verdicts) whole in tests: every shard, merged in id order."""

from __future__ import annotations

import contextlib
from typing import Any, cast

import redis

from watchpost.keys import ShardedStream


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, seq = entry_id.decode().split("-")
    return int(ms), int(seq)


def entries(client: redis.Redis, streams: ShardedStream[Any]) -> list[tuple[bytes, dict]]:
    """Every entry of every shard, oldest first (ids are Redis times, so across shards too)."""
    found = [entry for shard in streams for entry in cast(list, client.xrange(shard))]
    return sorted(found, key=lambda entry: _id(entry[0]))


def length(client: redis.Redis, streams: ShardedStream[Any]) -> int:
    return sum(client.xlen(shard) for shard in streams)


def pending(client: redis.Redis, streams: ShardedStream[Any], group: str) -> int:
    """Entries `group` has delivered and not acked, over every shard that has the group."""
    total = 0
    for shard in streams:
        with contextlib.suppress(redis.ResponseError):  # no such group (or stream) here
            total += client.xpending(shard, group)["pending"]
    return total
