"""One replica of recognition, liveness or the aggregator as a bare process (its stream worker,
no HTTP server), for tests that kill one with SIGKILL mid-stream:

    python -m tests.support.replica liveness    # settings from WATCHPOST_* as every service

It runs until SIGTERM (a clean stop gives its shards back) or until it is killed.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from watchpost.consumers import stream_worker
from watchpost.db import open_pool
from watchpost.keys import Group
from watchpost.service import configure_logging
from watchpost.service.app import redis_client
from watchpost.settings import (
    AggregatorSettings,
    CommonSettings,
    LivenessSettings,
    RecognitionSettings,
)
from watchpost.worker import StreamWorker


def build(service: str) -> StreamWorker[Any]:
    if service == "recognition":
        from services.recognition.stream import FrameRecognizer, GalleryHolder

        rec = RecognitionSettings()
        client = redis_client(rec.require_redis_url())
        holder = GalleryHolder(
            open_pool(rec.require_database_url()), client, rec.keys, k=rec.recognition_score_k
        )
        recognizer = FrameRecognizer(rec, redis_client=client, gallery=holder)
        holder.ensure_loaded()
        return stream_worker(
            rec, client, rec.keys.frames, group=Group.RECOGNITION, handle=recognizer.handle,
            state=recognizer,
        )  # fmt: skip
    if service == "liveness":
        from services.liveness.stream import LivenessTracker

        live = LivenessSettings()
        client = redis_client(live.require_redis_url())
        tracker = LivenessTracker(live, redis_client=client)
        tracker.reader.warm_up()
        return stream_worker(
            live, client, live.keys.frames, group=Group.LIVENESS, handle=tracker.handle,
            housekeeping=tracker.expire, state=tracker,
        )  # fmt: skip
    if service == "aggregator":
        from services.aggregator.stream import AlertAggregator

        agg = AggregatorSettings()
        client = redis_client(agg.require_redis_url())
        aggregator = AlertAggregator(
            agg, redis_client=client, pool=open_pool(agg.require_database_url())
        )
        return stream_worker(
            agg, client, agg.keys.verdicts, group=Group.AGGREGATOR, handle=aggregator.handle,
            state=aggregator,
        )  # fmt: skip
    raise SystemExit(f"no such service: {service}")


def main() -> None:
    configure_logging(CommonSettings())
    worker = build(sys.argv[1])
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    worker.run(stop)


if __name__ == "__main__":
    main()
