"""Verdicts as recognition and liveness publish them, and one aggregator run over them: the set-up
the aggregator, sightings and security tests share."""

from __future__ import annotations

import threading
from typing import Any

from services.aggregator.stream import AlertAggregator
from watchpost.consumers import stream_worker
from watchpost.db import identities
from watchpost.db.pool import Pool
from watchpost.geometry import Box
from watchpost.keys import Group
from watchpost.messages import LivenessState, LivenessVerdict, RecognitionVerdict
from watchpost.settings import AggregatorSettings
from watchpost.streams import publish

# (verdict, the frame it carries): recognition verdicts carry one, liveness verdicts none.
Published = tuple[RecognitionVerdict | LivenessVerdict, bytes | None]


def recognition_verdict(
    track: str,
    *,
    box: Box,
    captured_at: float,
    identity_id: int | None = None,
    name: str | None = None,
    distance: float = 0.8,
    camera: str = "door",
    frame_seq: int = 1,
    embedding: list[float] | None = None,
    **quality: Any,
) -> RecognitionVerdict:
    """One check; by default on a sharp, frontal detector box (evidence the access policy
    counts: access needs two of them)."""
    quality = {"detected": True, "sharpness": 200.0, "yaw": 0.0, **quality}
    return RecognitionVerdict(
        camera_id=camera,
        track_id=track,
        frame_seq=frame_seq,
        captured_at=captured_at,
        box=box,
        identity_id=identity_id,
        display_name=name,
        distance=distance,
        threshold=0.6,
        embedding=embedding,
        **quality,
    )


def liveness_verdict(
    track: str,
    state: LivenessState,
    *,
    camera: str = "door",
    blinks: int = 1,
    frames: int = 40,
    captured_at: float | None = None,
) -> LivenessVerdict:
    return LivenessVerdict(
        camera_id=camera,
        track_id=track,
        state=state,
        reason=f"{state} because",
        blinks=blinks,
        frames_seen=frames,
        frames_with_eyes=frames,
        captured_at=captured_at,
    )


def aggregate(
    env_settings: Any,
    redis_client: Any,
    pool: Pool,
    verdicts: list[Published],
    *,
    end: bool = False,
    **overrides: Any,
) -> AlertAggregator:
    """Publish the verdicts, let one aggregator process them all (burst), and end its tracks if
    `end` (else the aggregator stopped mid-track). One check per stranger keeps the tests'
    tables short; the two-check default has its own test."""
    overrides.setdefault("aggregator_unknown_min_checks", 1)
    settings = env_settings(AggregatorSettings, **overrides)
    keys = settings.keys
    for verdict, image in verdicts:
        publish(redis_client, keys.verdicts.of(verdict.camera_id), verdict, image=image)
    aggregator = AlertAggregator(settings, redis_client=redis_client, pool=pool)
    stream_worker(
        settings, redis_client, keys.verdicts, group=Group.AGGREGATOR, handle=aggregator.handle
    ).run(threading.Event(), burst=True)
    if end:
        aggregator.end_all()
    return aggregator


def person(pool: Pool, name: str) -> int:
    """A new identity's id."""
    with pool.connection() as conn:
        return int(identities.create_identity(conn, display_name=name)["id"])
