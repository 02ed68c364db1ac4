"""What every service process shares: logging, clients, a background loop, ops endpoints.

Each service's `main.py` builds a FastAPI app with `create_app()`; its lifespan opens clients,
starts the service's loop in a thread, and on shutdown asks the loop to stop and waits for it
to finish the message in hand.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import psycopg
import redis
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool

from watchpost.db import apply_migrations, open_pool
from watchpost.settings import CommonSettings

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    _STANDARD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: CommonSettings) -> None:
    handler = logging.StreamHandler()
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s {settings.service_name} %(levelname)s %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)


def redis_client(url: str) -> redis.Redis:
    """Binary-safe client (frames carry JPEG bytes) that fails fast and re-checks idle sockets."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=15, health_check_interval=15
    )


class BackgroundLoop:
    """Runs `target(stop)` in a daemon thread; `stop()` asks it to finish and waits."""

    def __init__(self, name: str, target: Callable[[threading.Event], object]) -> None:
        self.name = name
        self._target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._target(self._stop)
        except BaseException as exc:  # surfaced by /healthz, not swallowed
            self.error = exc
            log.exception("%s loop crashed", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def crashed(self) -> bool:
        return self.error is not None


def add_ops_routes(
    app: FastAPI,
    *,
    loops: Callable[[], list[BackgroundLoop]],
    dependencies: Callable[[], dict[str, bool]],
) -> None:
    """`/healthz` (the process and its loops are alive), `/readyz` (its dependencies answer),
    `/metrics` (Prometheus)."""
    started = time.time()

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        crashed = [loop.name for loop in loops() if loop.crashed]
        body = {
            "status": "ok" if not crashed else "failed",
            "crashed": crashed,
            "uptime_s": round(time.time() - started, 1),
        }
        return JSONResponse(body, status_code=200 if not crashed else 503)

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks = dependencies()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def redis_ok(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def postgres_ok(pool: ConnectionPool) -> bool:
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:  # PoolTimeout is an OperationalError
        return False


class Resources:
    """The clients a service process holds for its lifetime."""

    def __init__(self, settings: CommonSettings, *, needs_db: bool) -> None:
        self.settings = settings
        self.redis = redis_client(settings.require_redis_url())
        self.pool = None
        if needs_db:
            url = settings.require_database_url()
            apply_migrations(url)
            self.pool = open_pool(url)
        self.loops: list[BackgroundLoop] = []

    def dependencies(self) -> dict[str, bool]:
        checks = {"redis": redis_ok(self.redis)}
        if self.pool is not None:
            checks["postgres"] = postgres_ok(self.pool)
        return checks

    def close(self) -> None:
        for loop in self.loops:
            loop.stop()
        if self.pool is not None:
            self.pool.close()
        self.redis.close()


def service_app(
    settings: CommonSettings,
    *,
    needs_db: bool,
    build_loops: Callable[[Resources], list[BackgroundLoop]],
    setup: Callable[[FastAPI, Resources], None] | None = None,
    **fastapi_kwargs,
) -> FastAPI:
    """A FastAPI app that owns `Resources`, runs the service's loops and has the ops routes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        resources = Resources(settings, needs_db=needs_db)
        app.state.resources = resources
        if setup is not None:
            setup(app, resources)
        resources.loops = build_loops(resources)
        for loop in resources.loops:
            loop.start()
        log.info("%s started on port %s", settings.service_name, settings.port)
        try:
            yield
        finally:
            log.info("%s stopping", settings.service_name)
            resources.close()

    app = FastAPI(lifespan=lifespan, **fastapi_kwargs)
    add_ops_routes(
        app,
        loops=lambda: app.state.resources.loops,
        dependencies=lambda: app.state.resources.dependencies(),
    )
    return app
