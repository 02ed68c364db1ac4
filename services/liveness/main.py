"""Liveness service: blink evidence per tracked face, a verdict per track."""

from __future__ import annotations

from fastapi import FastAPI

from services.liveness.stream import LivenessTracker
from watchpost.consumers import stream_worker
from watchpost.keys import LIVENESS_GROUP, Keys
from watchpost.messages import Frame
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import LivenessSettings


def create_app(settings: LivenessSettings | None = None) -> FastAPI:
    settings = settings or LivenessSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        tracker = LivenessTracker(settings, redis_client=resources.redis)
        worker = stream_worker(
            settings,
            resources.redis,
            stream=Keys(settings.stream_prefix).frames,
            group=LIVENESS_GROUP,
            expected=Frame,
            handle=tracker.handle,
            housekeeping=tracker.expire,
        )
        return [BackgroundLoop("liveness", worker.run)]

    return service_app(settings, needs_db=False, build_loops=build, title="Watchpost liveness")
