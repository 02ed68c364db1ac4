"""Dashboard service: REST API, live alerts over a websocket, and the web page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard import api, legacy, live
from services.dashboard.broadcast import AlertBroadcaster
from services.dashboard.webhooks import NOTIFIER_GROUP, WebhookNotifier
from watchpost.consumers import stream_worker
from watchpost.keys import Keys
from watchpost.messages import AlertEvent
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import DashboardSettings
from watchpost.worker import StreamWorker

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
        loops = [BackgroundLoop("alert-broadcast", broadcaster.run)]
        if settings.dashboard_webhooks:
            loops.append(
                BackgroundLoop("webhooks", lambda stop: notifier(resources, stop).run(stop))
            )
        return loops

    def notifier(resources: Resources, stop) -> StreamWorker:
        sender = WebhookNotifier(settings, redis_client=resources.redis, stop=stop)
        return stream_worker(
            settings,
            resources.redis,
            stream=Keys(settings.stream_prefix).alerts,
            group=NOTIFIER_GROUP,
            expected=AlertEvent,
            handle=sender.handle,
            start_id="$",  # a newly configured webhook is not sent the alert history
        )

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
