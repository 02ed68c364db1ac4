"""What every service process shares: logging, clients, a background loop, ops endpoints.

Each service's `main.py` builds a FastAPI app with `create_app()`; its lifespan opens clients,
starts the service's loop in a thread, and on shutdown asks the loop to stop and waits for it
to finish the message in hand.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
import redis
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchpost.auth import (
    AuthError,
    FailureThrottle,
    KeyVerifier,
    Principal,
    RateLimited,
    Role,
    bearer,
    check_key,
    same_secret,
)
from watchpost.db import Pool, apply_migrations, open_pool
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


@dataclass(frozen=True)
class UploadRoute:
    """A route that may take a body beyond `max_body_bytes` (photos, bursts of frames), up to
    the service's `max_upload_bytes`, once `admit` has accepted its caller. `admit` raises the
    HTTPException the caller gets instead (401, 403, 429); it may leave what it learnt in the
    request's state for the route (the dashboard keeps the principal there)."""

    method: str
    path: re.Pattern[str]
    admit: Callable[[Request], Awaitable[object]]

    def matches(self, scope: Scope) -> bool:
        return scope["method"] == self.method and self.path.fullmatch(scope["path"]) is not None


class BodyLimit:
    """ASGI middleware: a request body beyond `max_bytes` gets 413 before it is buffered or
    spooled to disk, whether it declares its length or streams it chunked. Only an upload route
    may take more, up to `upload_bytes`, and only after its caller is admitted: a stranger's big
    body is answered (401, 403, 429 or 413) without being read."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_bytes: int | None = None,
        uploads: Sequence[UploadRoute] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes or max_bytes
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"content-length")
        declared = int(header) if header is not None and header.isdigit() else None
        limit = self.max_bytes
        upload = next((u for u in self.uploads if u.matches(scope)), None)
        if upload is not None and (declared is None or declared > self.max_bytes):
            try:
                await upload.admit(Request(scope))
            except HTTPException as refused:
                await _answer(scope, receive, send, refused)
                return
            limit = self.upload_bytes
        too_large = HTTPException(413, detail=f"the request body exceeds {limit} bytes")
        if declared is not None and declared > limit:
            await _answer(scope, receive, send, too_large)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large  # FastAPI turns it into the 413 answer while parsing the body
            return message

        await self.app(scope, counted, send)


async def _answer(scope: Scope, receive: Receive, send: Send, exc: HTTPException) -> None:
    response = JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )
    await response(scope, receive, send)


def add_ops_routes(
    app: FastAPI,
    *,
    loops: Callable[[], list[BackgroundLoop]],
    dependencies: Callable[[], dict[str, bool]],
    metrics: bool = True,
    metrics_token: str | None = None,
) -> None:
    """`/healthz` (the process and its loops are alive), `/readyz` (its dependencies answer),
    `/metrics` (Prometheus; off, or behind a token, as configured)."""
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

    if not metrics:
        return

    @app.get("/metrics", tags=["ops"], responses={401: {}})
    def prometheus_metrics(
        authorization: str | None = Header(None, include_in_schema=False),
    ) -> Response:
        if metrics_token is not None and not same_secret(bearer(authorization), metrics_token):
            raise HTTPException(
                401, detail="metrics token required", headers={"WWW-Authenticate": "Bearer"}
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def redis_ok(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def postgres_ok(pool: Pool) -> bool:
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:  # PoolTimeout is an OperationalError
        return False


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


class Resources(Generic[SettingsT]):
    """The clients a service process holds for its lifetime; with a database, also what checks
    API keys (the keys table is there). Generic over the service's own settings class."""

    def __init__(self, settings: SettingsT, *, needs_db: bool) -> None:
        self.settings = settings
        self.redis = redis_client(settings.require_redis_url())
        self.pool: Pool | None = None
        self.verifier: KeyVerifier | None = None
        if needs_db:
            url = settings.require_database_url()
            apply_migrations(url)
            self.pool = open_pool(url)
            self.verifier = KeyVerifier(self.pool, settings.auth_cache_seconds)
        self.throttle = FailureThrottle(
            self.redis, settings.stream_prefix, settings.auth_failures_per_minute
        )
        self.loops: list[BackgroundLoop] = []
        # More readiness checks a service adds (recognition: its gallery is loaded).
        self.checks: dict[str, Callable[[], bool]] = {}

    def require_pool(self) -> Pool:
        """The database pool of a service built with `needs_db=True`."""
        if self.pool is None:
            raise RuntimeError(f"{self.settings.service_name} was built without a database")
        return self.pool

    def dependencies(self) -> dict[str, bool]:
        checks = {"redis": redis_ok(self.redis)}
        if self.pool is not None:
            checks["postgres"] = postgres_ok(self.pool)
        for name, check in self.checks.items():
            checks[name] = check()
        return checks

    def close(self) -> None:
        for loop in self.loops:
            loop.stop()
        if self.pool is not None:
            self.pool.close()
        self.redis.close()


def service_app(
    settings: SettingsT,
    *,
    needs_db: bool,
    build_loops: Callable[[Resources[SettingsT]], list[BackgroundLoop]],
    setup: Callable[[FastAPI, Resources[SettingsT]], None] | None = None,
    uploads: Sequence[UploadRoute] = (),
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app that owns `Resources`, runs the service's loops and has the ops routes.
    Request bodies are limited to `max_body_bytes`, except on the `uploads` routes for the
    callers they admit; the OpenAPI pages and /metrics are served as the settings say."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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

    if not settings.http_docs:
        fastapi_kwargs.update(docs_url=None, redoc_url=None, openapi_url=None)
    app = FastAPI(lifespan=lifespan, **fastapi_kwargs)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        upload_bytes=settings.max_upload_bytes,
        uploads=uploads,
    )
    # FastAPI's documented way to replace the schema is to assign the method.
    app.openapi = lambda: openapi_with_sentence_errors(app)  # type: ignore[method-assign]

    @app.exception_handler(psycopg.errors.DataError)
    @app.exception_handler(psycopg.errors.NotNullViolation)
    @app.exception_handler(psycopg.errors.CheckViolation)
    async def unstorable(request: Request, exc: psycopg.Error) -> JSONResponse:
        # A value the schema let through but PostgreSQL cannot hold (an id beyond bigint, a
        # NUL byte): the caller's mistake, said as such, not a 500.
        log.info("refused unstorable input on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"a value is out of range or cannot be stored: {exc.sqlstate}"},
            status_code=422,
        )

    metrics_token = settings.http_metrics_token
    add_ops_routes(
        app,
        loops=lambda: app.state.resources.loops,
        dependencies=lambda: app.state.resources.dependencies(),
        metrics=settings.http_metrics,
        metrics_token=metrics_token.get_secret_value() if metrics_token else None,
    )
    return app


def openapi_with_sentence_errors(app: FastAPI) -> dict[str, Any]:
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


class ServiceGate:
    """Admits only the service token of `caller` (see SERVICE_LINKS): a route dependency, and an
    `admit` for upload routes. Built with the app, so a service without the token refuses to
    start instead of running open."""

    def __init__(self, settings: CommonSettings, caller: str) -> None:
        self.caller = caller
        self._token = settings.service_token(caller)

    def check(self, authorization: str | None) -> None:
        if not same_secret(bearer(authorization), self._token):
            raise HTTPException(
                401, detail="service token required", headers={"WWW-Authenticate": "Bearer"}
            )

    async def admit(self, request: Request) -> None:
        self.check(request.headers.get("authorization"))

    def dependency(self) -> Any:
        def check(authorization: str | None = Header(None, include_in_schema=False)) -> None:
            self.check(authorization)

        return Depends(check)


def api_key_auth(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A route dependency, and upload `admit`, taking an API key (`Authorization: Bearer wp_...`)
    whose role may act as `role`: 401 without a good key, 403 with another role, 429 after too
    many failures from the address. For services with a database other than the dashboard
    (kiosks at recognition, /status at capture); the principal is kept in the request state."""

    async def admit(request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            resources: Resources[CommonSettings] = request.app.state.resources
            assert resources.verifier is not None, "API keys need the database"
            key = bearer(request.headers.get("authorization"))
            address = request.client.host if request.client else "unknown"
            try:
                if key is None:
                    raise AuthError("no key")
                principal = await run_in_threadpool(
                    check_key, resources.verifier, resources.throttle, key, address
                )
            except AuthError:
                raise HTTPException(
                    401, detail="an API key is required", headers={"WWW-Authenticate": "Bearer"}
                ) from None
            except RateLimited as exc:
                raise HTTPException(
                    429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}
                ) from None
            request.state.principal = principal
        if not principal.may(role):
            raise HTTPException(403, detail=f"this needs a {role.name} key")
        return principal

    admit.__name__ = f"{role.name}_key"
    return admit


def service_headers(settings: CommonSettings) -> dict[str, str]:
    """Headers this service sends when it calls the service it is linked to."""
    return {"Authorization": f"Bearer {settings.service_token(settings.service_name)}"}


def uvicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """How uvicorn treats X-Forwarded-For and -Proto: believed only from the configured proxies.
    (uvicorn's own default believes them from 127.0.0.1, so anything on the same host, or a
    proxy that passes the header through, could pick the client address sign-in limits count.)"""
    trusted = settings.http_trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}
