"""Run capture, recognition, liveness and the aggregator to completion in turn (burst mode)."""

from __future__ import annotations

import threading
from pathlib import Path

from services.aggregator.stream import AlertAggregator
from services.capture.loop import CaptureLoop
from services.liveness.stream import LivenessTracker
from services.recognition.stream import FrameRecognizer, GalleryHolder
from watchpost.consumers import stream_worker
from watchpost.keys import Group, Keys
from watchpost.settings import (
    AggregatorSettings,
    CaptureSettings,
    LivenessSettings,
    RecognitionSettings,
)


def run_pipeline(env_settings, redis_client, pool, video: Path) -> dict:
    """Play `video` through every stage; returns what each stage did."""
    stop = threading.Event()
    capture = CaptureLoop(
        env_settings(CaptureSettings), redis_client=redis_client, pool=pool, source=str(video)
    )
    published = capture.run(stop, burst=True)
    processed = run_consumers(env_settings, redis_client, pool)
    return {"frames": published, **processed}


def run_consumers(env_settings, redis_client, pool) -> dict:
    """Recognition, liveness and the aggregator, each until its stream is drained."""
    stop = threading.Event()
    rec_settings = env_settings(RecognitionSettings)
    keys = Keys(rec_settings.stream_prefix)
    recognizer = FrameRecognizer(
        rec_settings,
        redis_client=redis_client,
        gallery=GalleryHolder(pool, redis_client, keys, k=rec_settings.recognition_score_k),
    )
    recognised = stream_worker(
        rec_settings,
        redis_client,
        keys.frames,
        group=Group.RECOGNITION,
        handle=recognizer.handle,
    ).run(stop, burst=True)
    live_settings = env_settings(LivenessSettings)
    tracker = LivenessTracker(live_settings, redis_client=redis_client)
    judged = stream_worker(
        live_settings,
        redis_client,
        keys.frames,
        group=Group.LIVENESS,
        handle=tracker.handle,
    ).run(stop, burst=True)
    agg_settings = env_settings(AggregatorSettings)
    aggregator = AlertAggregator(agg_settings, redis_client=redis_client, pool=pool)
    decided = stream_worker(
        agg_settings,
        redis_client,
        keys.verdicts,
        group=Group.AGGREGATOR,
        handle=aggregator.handle,
    ).run(stop, burst=True)
    aggregator.end_all()  # the replay is over: every track's sighting is final (and grouped)
    return {
        "recognition": recognised,
        "liveness": judged,
        "aggregator": decided,
        "liveness_tracks": tracker.tracks,
    }
