"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
import redis
from fastapi import Depends, Request

from watchpost.keys import Keys
from watchpost.settings import DashboardSettings


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    """One pooled connection per request, committed when the request succeeds."""
    with request.app.state.resources.pool.connection() as conn:
        yield conn


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.resources.redis


def get_settings(request: Request) -> DashboardSettings:
    return request.app.state.resources.settings


def get_keys(request: Request) -> Keys:
    return Keys(request.app.state.resources.settings.stream_prefix)


ConnDep = Annotated[psycopg.Connection, Depends(get_conn)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SettingsDep = Annotated[DashboardSettings, Depends(get_settings)]
KeysDep = Annotated[Keys, Depends(get_keys)]
