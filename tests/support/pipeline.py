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


def _replicas(env_settings, redis_client, names, settings_type, stream, group, make, overrides):
    """One service's state and stream worker per replica name; `stream` picks the stream the
    service reads from its keys, `make` builds its state (which handles each delivery)."""
    states: list[Any] = []
    workers: list[StreamWorker[Any]] = []
    for name in names:
        settings = env_settings(settings_type, consumer_name=name, **overrides)
        state = make(settings)
        states.append(state)
        workers.append(
            stream_worker(
                settings,
                redis_client,
                stream(settings.keys),
                group=group,
                handle=state.handle,
                state=state,
            )
        )
    return states, workers


def run_consumers(env_settings, redis_client, pool, *, replicas: int = 1, **overrides) -> dict:
    """Recognition, liveness and the aggregator (`replicas` of each), each until drained."""
    names = replica_names(replicas)
    _, recognisers = _replicas(
        env_settings,
        redis_client,
        names,
        RecognitionSettings,
        lambda keys: keys.frames,
        Group.RECOGNITION,
        lambda s: FrameRecognizer(
            s,
            redis_client=redis_client,
            gallery=GalleryHolder(pool, redis_client, s.keys, k=s.recognition_score_k),
        ),
        overrides,
    )
    recognised = run_replicas(recognisers)
    trackers, judges = _replicas(
        env_settings,
        redis_client,
        names,
        LivenessSettings,
        lambda keys: keys.frames,
        Group.LIVENESS,
        lambda s: LivenessTracker(s, redis_client=redis_client),
        overrides,
    )
    judged = run_replicas(judges)
    aggregators, deciders = _replicas(
        env_settings,
        redis_client,
        names,
        AggregatorSettings,
        lambda keys: keys.verdicts,
        Group.AGGREGATOR,
        lambda s: AlertAggregator(s, redis_client=redis_client, pool=pool),
        overrides,
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
