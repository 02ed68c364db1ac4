"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import redis
from fastapi import Depends, Request

from watchpost.db.pool import Conn
from watchpost.keys import Keys
from watchpost.settings import DashboardSettings


def get_conn(request: Request) -> Iterator[Conn]:
    """One pooled connection per request, committed when the request succeeds."""
    with request.app.state.resources.pool.connection() as conn:
        yield conn


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.resources.redis


def get_settings(request: Request) -> DashboardSettings:
    return request.app.state.resources.settings


def get_keys(request: Request) -> Keys:
    return request.app.state.resources.settings.keys


# scope="function": the connection is committed (and returned to the pool) when the route
# function returns, before the response is sent. With FastAPI's default it was committed after
# the response had gone out, so a client that created something and used it at once (the bulk
# enrolment: create a person, upload their photo) could be told it did not exist.
ConnDep = Annotated[Conn, Depends(get_conn, scope="function")]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SettingsDep = Annotated[DashboardSettings, Depends(get_settings)]
KeysDep = Annotated[Keys, Depends(get_keys)]
