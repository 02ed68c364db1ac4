"""Fan the alerts stream out to websocket clients.

One thread per dashboard process tails `wp:alerts` with plain XREAD (every dashboard replica sees
every alert; there is no group) and hands each alert to every subscriber's bounded queue. A client
too slow to keep up is disconnected rather than allowed to grow memory; it reconnects with the
last alert id it saw and the endpoint replays the gap from Postgres.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import cast

import redis
from prometheus_client import Gauge

from watchpost.keys import Keys
from watchpost.messages import AlertEvent, MessageError, decode

log = logging.getLogger(__name__)

CLIENTS = Gauge("watchpost_dashboard_websocket_clients", "Connected websocket clients")
QUEUE_SIZE = 256


class Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[AlertEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def offer(self, event: AlertEvent) -> None:  # runs on the event loop
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the endpoint to close this client


class AlertBroadcaster:
    def __init__(self, client: redis.Redis, keys: Keys, *, max_clients: int) -> None:
        self.redis = client
        self.keys = keys
        self.max_clients = max_clients
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscriber | None:
        with self._lock:
            if len(self._subscribers) >= self.max_clients:
                return None
            subscriber = Subscriber(loop)
            self._subscribers.add(subscriber)
            CLIENTS.set(len(self._subscribers))
            return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)
            CLIENTS.set(len(self._subscribers))

    def run(self, stop: threading.Event) -> None:
        last_id: bytes | str = "$"
        while not stop.is_set():
            try:
                # Our clients never decode responses: ids, field names and values are bytes.
                reply = cast(
                    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None,
                    self.redis.xread({self.keys.alerts: last_id}, count=100, block=1000),
                )
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("alert stream unreachable: %s", exc)
                stop.wait(1.0)
                continue
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    try:
                        event, _ = decode(fields, AlertEvent)
                    except MessageError as exc:
                        log.warning("skipping malformed alert %s: %s", entry_id, exc)
                        continue
                    if not isinstance(event, AlertEvent):  # decode returns the type it was given
                        continue
                    self._deliver(event)

    def _deliver(self, event: AlertEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.loop.call_soon_threadsafe(subscriber.offer, event)
