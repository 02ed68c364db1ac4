"""The whole pipeline in one process, each stage run to completion in turn (burst mode), on a
real video, real models, real Redis and Postgres."""

from __future__ import annotations

import threading

import pytest

from services.aggregator.stream import AlertAggregator
from services.capture.loop import CaptureLoop
from services.liveness.stream import LivenessTracker
from services.recognition.stream import FrameRecognizer, GalleryHolder
from tests.conftest import require_data
from watchpost.consumers import stream_worker
from watchpost.db import alerts
from watchpost.keys import AGGREGATOR_GROUP, LIVENESS_GROUP, RECOGNITION_GROUP, Keys
from watchpost.messages import Frame, Verdict
from watchpost.settings import (
    AggregatorSettings,
    CaptureSettings,
    LivenessSettings,
    RecognitionSettings,
)

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_video_to_alert(env_settings, redis_client, pool):
    video = require_data("video/talking_blinks_720p.mp4")
    stop = threading.Event()

    capture = CaptureLoop(
        env_settings(CaptureSettings), redis_client=redis_client, pool=pool, source=str(video)
    )
    published = capture.run(stop, burst=True)
    assert published > 200

    rec_settings = env_settings(RecognitionSettings)
    keys = Keys(rec_settings.stream_prefix)
    holder = GalleryHolder(pool, redis_client, keys)
    recognizer = FrameRecognizer(rec_settings, redis_client=redis_client, gallery=holder)
    stream_worker(
        rec_settings,
        redis_client,
        stream=keys.frames,
        group=RECOGNITION_GROUP,
        expected=Frame,
        handle=recognizer.handle,
    ).run(stop, burst=True)

    live_settings = env_settings(LivenessSettings)
    tracker = LivenessTracker(live_settings, redis_client=redis_client)
    stream_worker(
        live_settings,
        redis_client,
        stream=keys.frames,
        group=LIVENESS_GROUP,
        expected=Frame,
        handle=tracker.handle,
    ).run(stop, burst=True)
    print(
        {
            k: (e.detector.blinks, e.frames_seen, e.frames_with_eyes)
            for k, e in tracker.tracks.items()
        }
    )

    agg_settings = env_settings(AggregatorSettings)
    aggregator = AlertAggregator(agg_settings, redis_client=redis_client, pool=pool)
    stream_worker(
        agg_settings,
        redis_client,
        stream=keys.verdicts,
        group=AGGREGATOR_GROUP,
        expected=Verdict,
        handle=aggregator.handle,
    ).run(stop, burst=True)

    with pool.connection() as conn:
        rows = alerts.list_alerts(conn)
    print([(r["kind"], r["track_id"], r["liveness"], r["reason"]) for r in rows])
    assert rows
