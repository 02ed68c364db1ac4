"""A service's FastAPI app: its clients (`Resources`), lifespan, loops and server options."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from watchpost.auth import (
    FailureThrottle,
    KeyVerifier,
)
from watchpost.db import Pool, apply_migrations, open_pool
from watchpost.service.limits import BodyLimit, UploadRoute
from watchpost.service.loops import BackgroundLoop
from watchpost.service.ops import (
    add_ops_routes,
    openapi_with_sentence_errors,
    postgres_ok,
    redis_ok,
)
from watchpost.settings import CommonSettings
from watchpost.shards import check_shard_count

log = logging.getLogger(__name__)


def redis_client(url: str) -> redis.Redis:
    """Binary-safe client (frames carry JPEG bytes) that fails fast and re-checks idle sockets."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=15, health_check_interval=15
    )


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


class Resources(Generic[SettingsT]):
    """The clients a service process holds for its lifetime; with a database, also what checks
    API keys (the keys table is there). Generic over the service's own settings class."""

    def __init__(self, settings: SettingsT, *, needs_db: bool) -> None:
        self.settings = settings
        self.redis = redis_client(settings.require_redis_url())
        try:  # refuse to start on another shard count than the deployment's
            check_shard_count(self.redis, settings.keys)
        except redis.RedisError as exc:  # stream workers check again when they start
            log.warning("could not check the stream shard count yet: %s", exc)
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


def uvicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """How uvicorn treats X-Forwarded-For and -Proto: believed only from the configured proxies.
    (uvicorn's own default believes them from 127.0.0.1, so anything on the same host, or a
    proxy that passes the header through, could pick the client address sign-in limits count.)"""
    trusted = settings.http_trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}
