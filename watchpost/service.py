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
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool

from watchpost.auth import bearer, same_secret
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


class BodyLimit:
    """ASGI middleware: a request body beyond `max_bytes` gets 413 before it is buffered or
    spooled to disk, whether it declares its length or streams it chunked."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, detail=f"the request body exceeds {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": too_large.detail}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise too_large  # FastAPI turns it into the 413 answer while parsing the body
            return message

        await self.app(scope, counted, send)


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
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.openapi = lambda: openapi_with_sentence_errors(app)

    @app.exception_handler(psycopg.errors.DataError)
    @app.exception_handler(psycopg.errors.NotNullViolation)
    @app.exception_handler(psycopg.errors.CheckViolation)
    async def unstorable(request, exc: psycopg.Error) -> JSONResponse:
        # A value the schema let through but PostgreSQL cannot hold (an id beyond bigint, a
        # NUL byte): the caller's mistake, said as such, not a 500.
        log.info("refused unstorable input on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"a value is out of range or cannot be stored: {exc.sqlstate}"},
            status_code=422,
        )

    add_ops_routes(
        app,
        loops=lambda: app.state.resources.loops,
        dependencies=lambda: app.state.resources.dependencies(),
    )
    return app


def openapi_with_sentence_errors(app: FastAPI) -> dict:
    """The app's OpenAPI schema, saying what its 422 answers really hold: FastAPI's list of
    field errors when a request does not parse, or one sentence when its content is unusable
    (a corrupt image, no face). Clients and schemathesis can then check both."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if error is not None:
            detail = error["properties"]["detail"]
            error["properties"]["detail"] = {
                "title": "Detail",
                "anyOf": [{"type": "string"}, {k: v for k, v in detail.items() if k != "title"}],
            }
        app.openapi_schema = schema
    return app.openapi_schema


def internal_auth(settings: CommonSettings):
    """A route dependency that admits only callers presenting the internal token. Resolved when
    the app is built, so a service without a token refuses to start instead of running open."""
    token = settings.require_internal_token()

    def check(authorization: str | None = Header(None, include_in_schema=False)) -> None:
        if not same_secret(bearer(authorization), token):
            raise HTTPException(
                401, detail="internal token required", headers={"WWW-Authenticate": "Bearer"}
            )

    return Depends(check)


def internal_headers(settings: CommonSettings) -> dict[str, str]:
    """Headers a service sends when it calls another service's API."""
    return {"Authorization": f"Bearer {settings.require_internal_token()}"}
