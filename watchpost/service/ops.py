"""Operations endpoints every service serves: health, readiness, metrics; and the OpenAPI errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchpost.auth import (
    bearer,
    same_secret,
)
from watchpost.db import Pool
from watchpost.service.loops import BackgroundLoop

log = logging.getLogger(__name__)


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
