"""The whole pipeline in one process, each stage run to completion in turn (burst mode), on a
real video, real models, real Redis and Postgres."""

from __future__ import annotations

import pytest

from tests.conftest import require_data
from tests.support.pipeline import run_pipeline
from watchpost.db import alerts

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_video_to_alert(env_settings, redis_client, pool):
    video = require_data("video/talking_blinks_720p.mp4")
    result = run_pipeline(env_settings, redis_client, pool, video)
    assert result["frames"] > 280
    (evidence,) = result["liveness_tracks"].values()
    assert evidence.detector.blinks >= 5
    with pool.connection() as conn:
        rows = alerts.list_alerts(conn)
    # Nobody is enrolled: one track, one unknown-person alert, with its snapshot and face crop.
    assert [(r["kind"], r["has_snapshot"], r["has_face"]) for r in rows] == [
        ("unknown_person", True, True)
    ]
    # The stranger took two recognition checks: the alert says when the frame that completed
    # the evidence was captured (what pipeline latency is measured from), after the snapshot's.
    (row,) = rows
    event = alerts.event_from_row(row)
    assert event.evidence_at is not None and event.evidence_at >= event.captured_at
