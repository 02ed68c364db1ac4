"""Dashboard service: REST API, live alerts over a websocket, and the web page."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard import api, auth, legacy, live
from services.dashboard.auth import AuthState
from services.dashboard.broadcast import AlertBroadcaster
from services.dashboard.webhooks import NOTIFIER_GROUP, WebhookNotifier
from watchpost.consumers import stream_worker
from watchpost.db import access
from watchpost.keys import Keys
from watchpost.messages import AlertEvent
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import DashboardSettings
from watchpost.worker import StreamWorker

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()
    settings.require_internal_token()  # refuse to start without one, not at the first request

    def build(resources: Resources) -> list[BackgroundLoop]:
        broadcaster = AlertBroadcaster(
            resources.redis,
            Keys(settings.stream_prefix),
            max_clients=settings.dashboard_max_websockets,
        )
        app.state.broadcaster = broadcaster
        loops = [
            BackgroundLoop("alert-broadcast", broadcaster.run),
            BackgroundLoop("retention", lambda stop: retention(resources, stop)),
        ]
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

    def setup(app: FastAPI, resources: Resources) -> None:
        app.state.auth = AuthState(resources)

    app = service_app(
        settings,
        needs_db=True,
        build_loops=build,
        setup=setup,
        title="Watchpost dashboard",
        description="Enrol identities, review alerts, watch them arrive live.",
    )
    if settings.dashboard_cors_origins:  # closed unless origins are named
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.dashboard_cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(auth.router)
    app.include_router(api.router)
    app.include_router(live.router)
    app.include_router(legacy.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def retention(resources: Resources, stop) -> None:
    """The retention job: purge expired alerts, snapshots and audit entries now and then."""
    settings = resources.settings
    while not stop.is_set():
        try:
            with resources.pool.connection() as conn:
                removed = access.purge_expired(
                    conn,
                    alert_days=settings.retention_alert_days,
                    snapshot_days=settings.retention_snapshot_days,
                    audit_days=settings.retention_audit_days,
                )
            if any(removed.values()):
                log.info("retention purged %s", removed)
        except psycopg.Error as exc:  # the database is away: try again next round
            log.warning("retention job failed: %s", exc)
        stop.wait(settings.retention_check_seconds)
