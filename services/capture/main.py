"""Capture service: one loop per enabled camera, following camera changes without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from services.capture.supervisor import CaptureSupervisor
from watchpost.auth import Principal, Role
from watchpost.service import BackgroundLoop, Resources, api_key_auth, service_app
from watchpost.settings import CaptureSettings
from watchpost.sources import redact
from watchpost.vision.models import warm_up


def create_app(settings: CaptureSettings | None = None) -> FastAPI:
    settings = settings or CaptureSettings()

    def build(resources: Resources[CaptureSettings]) -> list[BackgroundLoop]:
        blaze = settings.capture_detector == "blazeface"
        warm_up(  # before the service reports ready
            detector=not blaze,
            blazeface_network=settings.capture_blazeface_network if blaze else None,
        )
        supervisor = CaptureSupervisor(
            settings,
            redis_client=resources.redis,
            pool=resources.require_pool(),
            default_source=settings.resolved_source(),
        )
        app.state.supervisor = supervisor
        return [BackgroundLoop("capture", supervisor.run)]

    app = service_app(settings, needs_db=True, build_loops=build, title="Watchpost capture")

    @app.get("/status", tags=["capture"], responses={401: {}, 403: {}, 429: {}})
    def status(who: Annotated[Principal, Depends(api_key_auth(Role.viewer))]) -> list[dict]:
        """Every camera this process runs, with its status and last error (an API key is
        needed; below admin, credentials in sources are shown as `***`)."""
        statuses = app.state.supervisor.statuses()
        if not who.may(Role.admin):
            statuses = [{**s, "source": redact(s["source"])} for s in statuses]
        return statuses

    return app
