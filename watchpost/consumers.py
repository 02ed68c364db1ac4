"""Build a service's stream worker from its settings: one recipe for every consumer."""

from __future__ import annotations

from collections.abc import Callable

import redis

from watchpost.keys import Keys
from watchpost.settings import CommonSettings
from watchpost.streams import Delivery, GroupConsumer
from watchpost.worker import StreamWorker


def stream_worker(
    settings: CommonSettings,
    client: redis.Redis,
    *,
    stream: str,
    group: str,
    expected: type | object,
    handle: Callable[[Delivery], None],
    housekeeping: Callable[[], None] | None = None,
    start_id: str = "0",
) -> StreamWorker:
    consumer = GroupConsumer(
        client,
        stream=stream,
        group=group,
        consumer=settings.consumer_name,
        expected=expected,
        dead_letter_stream=Keys(settings.stream_prefix).dead_letter,
        start_id=start_id,
    )
    return StreamWorker(consumer, handle, service=settings.service_name, housekeeping=housekeeping)
