"""Dashboard service: REST API, live alerts over a websocket, and the web page."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import redis
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard import auth, legacy, live
from services.dashboard.auth import AuthState, require
from services.dashboard.broadcast import AlertBroadcaster
from services.dashboard.headers import SecurityHeaders
from services.dashboard.routes import admin, alerts, audit, cameras, identities, sightings
from services.dashboard.webhooks import WebhookNotifier
from watchpost.auth import Role
from watchpost.consumers import stream_worker
from watchpost.db.retention import purge_expired
from watchpost.keys import Group, Keys
from watchpost.messages import AlertEvent
from watchpost.service import BackgroundLoop, Resources, UploadRoute, service_app
from watchpost.settings import DashboardSettings
from watchpost.streams import trim_older_than
from watchpost.worker import StreamWorker

if TYPE_CHECKING:  # paho (the `mqtt` extra) is imported only when a broker is configured
    from services.dashboard.mqtt import MqttBridge

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


# Routes whose bodies may exceed the small limit, and who may send them (checked before a byte
# of the body is read).
UPLOADS = [
    UploadRoute("POST", re.compile(r"/api/v1/identities/[^/]+/faces"), require(Role.admin)),
    UploadRoute("POST", re.compile(r"/dashboard"), require(Role.operator)),
]


# Every router the dashboard serves, in order (a path matches the first route that fits): adding
# a resource is one line here.
ROUTERS: list[APIRouter] = [
    auth.router,
    identities.router,
    alerts.router,
    sightings.router,
    cameras.router,
    audit.router,
    admin.router,
    live.router,
    legacy.router,
]


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()
    settings.service_token("dashboard")  # refuse to start without it, not at the first enrolment

    def build(resources: Resources[DashboardSettings]) -> list[BackgroundLoop]:
        broadcaster = AlertBroadcaster(
            resources.redis,
            Keys(settings.stream_prefix),
            max_clients=settings.dashboard_max_websockets,
        )
        app.state.broadcaster = broadcaster
        loops = [
            BackgroundLoop("alert-broadcast", broadcaster.run),
            BackgroundLoop("retention", lambda stop: retention(resources, stop)),
            BackgroundLoop("stream-retention", lambda stop: stream_retention(resources, stop)),
        ]
        if settings.dashboard_webhooks:
            loops.append(
                BackgroundLoop("webhooks", lambda stop: notifier(resources, stop).run(stop))
            )
        if settings.mqtt_url:
            from services.dashboard.mqtt import MqttBridge  # paho is the `mqtt` extra

            # Built here, before the service says it is ready (it connects only in its loop),
            # so `app.state.mqtt` is there as soon as the app is up, not when a thread gets to it.
            bridge = MqttBridge(
                settings, redis_client=resources.redis, pool=resources.require_pool()
            )
            app.state.mqtt = bridge
            loops.append(BackgroundLoop("mqtt", lambda stop: mqtt_bridge(bridge, resources, stop)))
        return loops

    def mqtt_bridge(
        bridge: MqttBridge, resources: Resources[DashboardSettings], stop: threading.Event
    ) -> None:
        worker = stream_worker(
            settings,
            resources.redis,
            Keys(settings.stream_prefix).alerts,
            group=Group.MQTT,
            handle=bridge.handle,
            housekeeping=bridge.housekeeping,
            start_id="$",  # a newly configured broker is not sent the alert history
        )
        bridge.publisher.start()
        try:
            worker.run(stop)
        finally:
            bridge.publisher.stop()

    def notifier(
        resources: Resources[DashboardSettings], stop: threading.Event
    ) -> StreamWorker[AlertEvent]:
        sender = WebhookNotifier(settings, redis_client=resources.redis, stop=stop)
        return stream_worker(
            settings,
            resources.redis,
            Keys(settings.stream_prefix).alerts,
            group=Group.NOTIFIER,
            handle=sender.handle,
            start_id="$",  # a newly configured webhook is not sent the alert history
        )

    def setup(app: FastAPI, resources: Resources[DashboardSettings]) -> None:
        app.state.auth = AuthState(resources)

    app = service_app(
        settings,
        needs_db=True,
        build_loops=build,
        setup=setup,
        uploads=UPLOADS,
        title="Watchpost dashboard",
        description="Enrol identities, review alerts, watch them arrive live.",
    )
    app.add_middleware(SecurityHeaders, https=settings.dashboard_secure_cookies)
    if settings.dashboard_cors_origins:  # closed unless origins are named
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.dashboard_cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def retention(resources: Resources[DashboardSettings], stop: threading.Event) -> None:
    """The retention job: purge expired alerts, snapshots and audit entries now and then."""
    settings = resources.settings
    while not stop.is_set():
        try:
            with resources.require_pool().connection() as conn:
                removed = purge_expired(
                    conn,
                    alert_days=settings.retention_alert_days,
                    snapshot_days=settings.retention_snapshot_days,
                    audit_days=settings.retention_audit_days,
                    sighting_days=settings.retention_sighting_days,
                )
            if any(removed.values()):
                log.info("retention purged %s", removed)
        except psycopg.Error as exc:  # the database is away: try again next round
            log.warning("retention job failed: %s", exc)
        stop.wait(settings.retention_check_seconds)


def stream_retention(resources: Resources[DashboardSettings], stop: threading.Event) -> None:
    """Trim Redis stream entries older than `retention_stream_seconds`: verdicts carry frames
    and names, alerts carry names, and with no other bound they would stay as long as the
    streams' length caps allow (days of a quiet camera)."""
    settings = resources.settings
    keys = settings.keys
    streams: list[str] = [*keys.frames, *keys.verdicts, keys.alerts, keys.dead_letter]
    while not stop.is_set():
        try:
            trimmed = trim_older_than(resources.redis, streams, settings.retention_stream_seconds)
            if any(trimmed.values()):
                log.info("stream retention trimmed %s", trimmed)
        except redis.RedisError as exc:  # Redis is away: try again next round
            log.warning("stream retention failed: %s", exc)
        stop.wait(settings.retention_stream_check_seconds)
