"""Dashboard service: REST API, live alerts over a websocket, and the web page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard import api, legacy, live
from services.dashboard.broadcast import AlertBroadcaster
from watchpost.keys import Keys
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import DashboardSettings

STATIC = Path(__file__).parent / "static"


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        broadcaster = AlertBroadcaster(
            resources.redis,
            Keys(settings.stream_prefix),
            max_clients=settings.dashboard_max_websockets,
        )
        app.state.broadcaster = broadcaster
        return [BackgroundLoop("alert-broadcast", broadcaster.run)]

    app = service_app(
        settings,
        needs_db=True,
        build_loops=build,
        title="Watchpost dashboard",
        description="Enrol identities, review alerts, watch them arrive live.",
    )
    app.include_router(api.router)
    app.include_router(live.router)
    app.include_router(legacy.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
