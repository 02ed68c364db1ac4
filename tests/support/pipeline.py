"""Run capture, recognition, liveness and the aggregator to completion in turn (burst mode), with
one replica of each or several sharing the shards."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from services.aggregator.stream import AlertAggregator
from services.capture.loop import CaptureLoop
from services.liveness.stream import LivenessTracker
from services.recognition.stream import FrameRecognizer, GalleryHolder
from watchpost.consumers import stream_worker
from watchpost.keys import Group
from watchpost.settings import (
    AggregatorSettings,
    CaptureSettings,
    LivenessSettings,
    RecognitionSettings,
)
from watchpost.shards import ShardedConsumer
from watchpost.worker import StreamWorker


def run_pipeline(env_settings, redis_client, pool, video: Path) -> dict:
    """Play `video` through every stage; returns what each stage did."""
    stop = threading.Event()
    capture = CaptureLoop(
        env_settings(CaptureSettings), redis_client=redis_client, pool=pool, source=str(video)
    )
    published = capture.run(stop, burst=True)
    processed = run_consumers(env_settings, redis_client, pool)
    return {"frames": published, **processed}


def replica_names(replicas: int) -> list[str]:
    """Consumer names of `replicas` replicas of a service (one: the tests' usual name)."""
    return ["test"] if replicas == 1 else [f"replica-{n}" for n in range(1, replicas + 1)]


def run_replicas(workers: list[StreamWorker[Any]]) -> int:
    """Replicas of one service, each until its shards are drained. They beat their heartbeats
    first, so each takes its fair share as replicas started together do."""
    for worker in workers:
        if isinstance(worker.consumer, ShardedConsumer):
            worker.consumer.join()
    return sum(worker.run(threading.Event(), burst=True) for worker in workers)


def run_consumers(env_settings, redis_client, pool, *, replicas: int = 1, **overrides) -> dict:
    """Recognition, liveness and the aggregator (`replicas` of each), each until drained."""
    names = replica_names(replicas)
    recognisers = []
    for name in names:
        rec_settings = env_settings(RecognitionSettings, consumer_name=name, **overrides)
        recognizer = FrameRecognizer(
            rec_settings,
            redis_client=redis_client,
            gallery=GalleryHolder(
                pool, redis_client, rec_settings.keys, k=rec_settings.recognition_score_k
            ),
        )
        recognisers.append(
            stream_worker(
                rec_settings,
                redis_client,
                rec_settings.keys.frames,
                group=Group.RECOGNITION,
                handle=recognizer.handle,
                state=recognizer,
            )
        )
    recognised = run_replicas(recognisers)
    trackers, judges = [], []
    for name in names:
        live_settings = env_settings(LivenessSettings, consumer_name=name, **overrides)
        tracker = LivenessTracker(live_settings, redis_client=redis_client)
        trackers.append(tracker)
        judges.append(
            stream_worker(
                live_settings,
                redis_client,
                live_settings.keys.frames,
                group=Group.LIVENESS,
                handle=tracker.handle,
                state=tracker,
            )
        )
    judged = run_replicas(judges)
    aggregators, deciders = [], []
    for name in names:
        agg_settings = env_settings(AggregatorSettings, consumer_name=name, **overrides)
        aggregator = AlertAggregator(agg_settings, redis_client=redis_client, pool=pool)
        aggregators.append(aggregator)
        deciders.append(
            stream_worker(
                agg_settings,
                redis_client,
                agg_settings.keys.verdicts,
                group=Group.AGGREGATOR,
                handle=aggregator.handle,
                state=aggregator,
            )
        )
    decided = run_replicas(deciders)
    for aggregator in aggregators:
        aggregator.end_all()  # the replay is over: every track's sighting is final (and grouped)
    return {
        "recognition": recognised,
        "liveness": judged,
        "aggregator": decided,
        "liveness_tracks": {k: v for t in trackers for k, v in t.tracks.items()},
        "shards": {
            service: {
                worker.consumer.consumer: worker.consumer.owned
                for worker in workers
                if isinstance(worker.consumer, ShardedConsumer)
            }
            for service, workers in (
                ("recognition", recognisers),
                ("liveness", judges),
                ("aggregator", deciders),
            )
        },
    }
