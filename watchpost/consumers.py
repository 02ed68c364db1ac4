"""Build a service's stream worker from its settings: one recipe for every consumer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from watchpost.keys import Group, ShardedStream, Stream
from watchpost.messages import Message
from watchpost.settings import CommonSettings
from watchpost.shards import ShardedConsumer, ShardState
from watchpost.streams import Delivery, GroupConsumer
from watchpost.worker import Consumer, StreamWorker

M = TypeVar("M", bound=Message)


def stream_worker(
    settings: CommonSettings,
    client: redis.Redis,
    stream: Stream[M] | ShardedStream[M],
    *,
    group: Group,
    handle: Callable[[Delivery[M]], None],
    housekeeping: Callable[[], None] | None = None,
    state: ShardState[M] | None = None,
    start_id: str = "0",
) -> StreamWorker[M]:
    """A worker on one stream, or on the shards of a sharded one that this replica owns (leases
    per (service, shard); `state` rebuilds per-track state when it takes a shard over)."""
    consumer: Consumer[M]
    if isinstance(stream, ShardedStream):
        consumer = ShardedConsumer(
            client,
            stream,
            group=group,
            service=settings.service_name,
            consumer=settings.consumer_name,
            state=state,
            lease_seconds=settings.shard_lease_seconds,
            replay_seconds=settings.shard_replay_seconds,
            start_id=start_id,
        )
    else:
        consumer = GroupConsumer(
            client, stream, group=group, consumer=settings.consumer_name, start_id=start_id
        )
    return StreamWorker(consumer, handle, service=settings.service_name, housekeeping=housekeeping)
