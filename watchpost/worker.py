"""The loop every stream-consuming service runs, with a burst mode for tests.

`run(stop, burst=True)` processes until its input is drained and returns, so a test can publish,
run the worker to completion and look at the result with no sleeps. Without burst it runs until
`stop` is set and finishes the message in hand first (graceful shutdown).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import psycopg
import redis
from prometheus_client import Counter, Gauge

from watchpost.messages import Message
from watchpost.streams import Delivery

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


class Consumer(Protocol[M]):
    """What the loop reads through: a `GroupConsumer` (one stream) or a `ShardedConsumer` (the
    shards this replica owns, watchpost/shards.py)."""

    def start(self) -> None: ...

    def read(self, *, count: int = ..., block_ms: int | None = ...) -> list[Delivery[M]]: ...

    def settle(self, delivery: Delivery[M]) -> None: ...

    def failed(self, delivery: Delivery[M], error: BaseException) -> None: ...

    def redeliver_pending(self) -> None: ...

    def close(self) -> None: ...


PROCESSED = Counter(
    "watchpost_messages_processed_total", "Stream messages handled and acked", ["service"]
)
FAILED = Counter("watchpost_messages_failed_total", "Handler failures", ["service"])
OUTAGES = Counter(
    "watchpost_infrastructure_errors_total",
    "Redis/Postgres errors that paused the loop",
    ["service"],
)
HEALTHY = Gauge(
    "watchpost_worker_healthy", "1 while the loop reaches its dependencies", ["service"]
)

# Failures of the infrastructure, not of the message: retry the same message after a pause,
# never dead-letter it (an alert decided while Postgres is down must be written when it returns).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    psycopg.OperationalError,
)


class StreamWorker(Generic[M]):
    def __init__(
        self,
        consumer: Consumer[M],
        handle: Callable[[Delivery[M]], None],
        *,
        service: str,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_every_s: float = 1.0,
        batch: int = 16,
        block_ms: int = 500,
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.service = service
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self._housekept_at = 0.0
        self.batch = batch
        self.block_ms = block_ms
        self.healthy = False
        self._backoff = 0.0

    def run(self, stop: threading.Event, *, burst: bool = False) -> int:
        """Process messages until `stop` is set, or (burst) until the stream is drained."""
        processed = 0
        started = False
        while not stop.is_set():
            try:
                if not started:
                    self.consumer.start()
                    started = True
                deliveries = self.consumer.read(
                    count=self.batch, block_ms=None if burst else self.block_ms
                )
                processed += self._process(deliveries, stop)
                self._housekeep(idle=not deliveries)
                if burst and not deliveries:
                    break
                self._mark_healthy()
            except TRANSIENT_ERRORS as exc:
                self._pause(exc, stop)
        if stop.is_set() and started:  # a clean stop: leases go back at once
            try:
                self.consumer.close()
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "%s: could not give its leases back (%s); they expire", self.service, exc
                )
        return processed

    def _process(self, deliveries: list[Delivery[M]], stop: threading.Event) -> int:
        done = 0
        for delivery in deliveries:
            try:
                self.handle(delivery)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                FAILED.labels(self.service).inc()
                log.exception("%s: handling %s failed", self.service, delivery.entry_id)
                self.consumer.failed(delivery, exc)
                continue
            self.consumer.settle(delivery)
            PROCESSED.labels(self.service).inc()
            done += 1
        return done

    def _housekeep(self, *, idle: bool) -> None:
        """Periodic upkeep (expiring tracks, reloading the gallery): whenever the stream is
        idle, and at least every `housekeeping_every_s` while it is busy."""
        if self.housekeeping is None:
            return
        now = time.monotonic()
        if idle or now - self._housekept_at >= self.housekeeping_every_s:
            self._housekept_at = now
            self.housekeeping()

    def _mark_healthy(self) -> None:
        if not self.healthy:
            log.info("%s: connected", self.service)
        self.healthy = True
        self._backoff = 0.0
        HEALTHY.labels(self.service).set(1)

    def _pause(self, exc: BaseException, stop: threading.Event) -> None:
        self.healthy = False
        HEALTHY.labels(self.service).set(0)
        OUTAGES.labels(self.service).inc()
        self._backoff = min(max(self._backoff * 2, 0.25), 5.0)
        log.warning("%s: %s; retrying in %.2fs", self.service, exc, self._backoff)
        # Unacked messages stay in our pending list and are read again after the pause.
        self.consumer.redeliver_pending()
        stop.wait(self._backoff)
