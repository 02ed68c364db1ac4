"""Capture service: one camera per process (scale out with one container per camera)."""

from __future__ import annotations

from fastapi import FastAPI

from services.capture.loop import CaptureLoop
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import CaptureSettings

DEMO_VIDEO = "video/talking_blinks_720p.mp4"


def resolve_source(settings: CaptureSettings) -> str:
    """The configured source, else the demo video from the data folder."""
    if settings.capture_source:
        return settings.capture_source
    return str(settings.data_dir / DEMO_VIDEO)


def create_app(settings: CaptureSettings | None = None) -> FastAPI:
    settings = settings or CaptureSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        loop = CaptureLoop(
            settings,
            redis_client=resources.redis,
            pool=resources.pool,
            source=resolve_source(settings),
        )
        app.state.capture = loop
        return [BackgroundLoop("capture", loop.run)]

    app = service_app(settings, needs_db=True, build_loops=build, title="Watchpost capture")

    @app.get("/status", tags=["capture"])
    def status() -> dict:
        loop: CaptureLoop = app.state.capture
        return {
            "camera_id": loop.camera,
            "source": loop.source,
            "status": loop.status,
            "last_error": loop.last_error,
            "frames_published": loop.frames_published,
        }

    return app
