"""Build a service's stream worker from its settings: one recipe for every consumer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from watchpost.keys import Group, Stream
from watchpost.messages import Message
from watchpost.settings import CommonSettings
from watchpost.streams import Delivery, GroupConsumer
from watchpost.worker import StreamWorker

M = TypeVar("M", bound=Message)


def stream_worker(
    settings: CommonSettings,
    client: redis.Redis,
    stream: Stream[M],
    *,
    group: Group,
    handle: Callable[[Delivery[M]], None],
    housekeeping: Callable[[], None] | None = None,
    start_id: str = "0",
) -> StreamWorker[M]:
    consumer = GroupConsumer(
        client, stream, group=group, consumer=settings.consumer_name, start_id=start_id
    )
    return StreamWorker(consumer, handle, service=settings.service_name, housekeeping=housekeeping)
