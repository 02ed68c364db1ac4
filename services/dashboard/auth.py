"""Dashboard access control: who is calling, what their role allows, page login, audit.

A caller is an API key (`Authorization: Bearer wp_...`), a page session (the `watchpost_session`
cookie set by `POST /api/v1/session`), or another service holding the internal token (treated as
admin, used by legacy alert senders). Every route names the least role it needs.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from services.dashboard.deps import ConnDep
from watchpost.auth import (
    INTERNAL,
    AuthError,
    KeyVerifier,
    Principal,
    RateLimited,
    Role,
    Sessions,
    bearer,
    rate_limit,
    same_secret,
)
from watchpost.db import access
from watchpost.keys import Keys

log = logging.getLogger(__name__)
SESSION_COOKIE = "watchpost_session"
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


class AuthState:
    """What the dashboard process keeps to check callers (built in the app's setup)."""

    def __init__(self, resources) -> None:
        settings = resources.settings
        self.resources = resources
        self.internal_token = settings.require_internal_token()
        self.verifier = KeyVerifier(settings.auth_cache_seconds)
        self.sessions = Sessions(
            resources.redis,
            Keys(settings.stream_prefix).prefix,
            ttl_seconds=settings.dashboard_session_hours * 3600,
        )

    def check_key(self, key: str) -> Principal:
        with self.resources.pool.connection() as conn:
            return self.verifier.check(conn, key)

    def key_live(self, key_id: str) -> bool:
        with self.resources.pool.connection() as conn:
            row = access.key_for_check(conn, key_id)
        return row is not None and row["revoked_at"] is None

    def identify(self, connection: HTTPConnection) -> Principal | None:
        """The caller of a request or websocket, or None (blocking: run it in a thread)."""
        token = bearer(connection.headers.get("authorization"))
        if token is not None:
            if same_secret(token, self.internal_token):
                return INTERNAL
            try:
                return self.check_key(token)
            except AuthError:
                return None
        session = connection.cookies.get(SESSION_COOKIE)
        if session:
            principal = self.sessions.get(session)
            # A revoked key ends its sessions too.
            if principal is not None and principal.key_id and self.key_live(principal.key_id):
                return principal
        return None


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


async def authenticate(connection: HTTPConnection) -> Principal:
    principal = getattr(connection.state, "principal", None)  # routes with two role checks
    if principal is None:
        state: AuthState = connection.app.state.auth
        principal = await run_in_threadpool(state.identify, connection)
        connection.state.principal = principal
    if principal is None:
        raise HTTPException(401, detail="sign in or send an API key", headers=UNAUTHORIZED)
    return principal


def require(role: Role):
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.may(role):
            raise HTTPException(403, detail=f"this needs the {role.name} role")
        return principal

    dependency.__name__ = f"require_{role.name}"
    return dependency


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
VIEWER = [Depends(require(Role.viewer))]


def audit(
    conn,
    request: Request,
    who: Principal,
    action: str,
    target_type: str | None = None,
    target_id=None,
    **details,
) -> None:
    """One audit entry, in the same transaction as the change it records."""
    access.audit(
        conn,
        actor=who.actor,
        role=who.role.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        client=client_address(request),
    )


def throttle(request: Request, bucket: str, who: str, per_minute: int) -> None:
    """Refuse with 429 past `per_minute` requests of `bucket` by `who`."""
    keys = Keys(request.app.state.resources.settings.stream_prefix)
    try:
        rate_limit(
            request.app.state.resources.redis,
            f"{keys.prefix}:ratelimit:{bucket}:{who}",
            limit=per_minute,
            window_seconds=60,
        )
    except RateLimited as exc:
        raise HTTPException(
            429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from None


def same_origin(connection: HTTPConnection, allowed: list[str]) -> bool:
    """A browser's Origin must be the dashboard itself or a configured one (websockets are not
    covered by CORS, so a hostile page could otherwise ride the session cookie)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True  # not a browser
    return urlsplit(origin).netloc == connection.headers.get("host") or origin in allowed


# -- page login -------------------------------------------------------------------------------
router = APIRouter(prefix="/api/v1", tags=["session"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200, description="An API key (wp_...)")


class SessionInfo(BaseModel):
    name: str
    role: str
    key_id: str | None = None


@router.post("/session", response_model=SessionInfo, responses={401: {}, 429: {}})
def login(body: Login, request: Request, response: Response, conn: ConnDep) -> SessionInfo:
    """Sign the page in with an API key; sets an HttpOnly session cookie."""
    state: AuthState = request.app.state.auth
    settings = request.app.state.resources.settings
    throttle(request, "login", client_address(request), settings.dashboard_login_per_minute)
    try:
        principal = state.verifier.check_uncached(conn, body.key)
    except AuthError:
        access.audit(
            conn,
            actor="anonymous",
            role="none",
            action="login_failed",
            client=client_address(request),
        )
        conn.commit()  # the failed attempt is recorded even though the request fails
        raise HTTPException(401, detail="wrong, revoked or malformed key") from None
    token = state.sessions.start(principal)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.dashboard_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_secure_cookies,
        path="/",
    )
    audit(conn, request, principal, "login")
    return SessionInfo(name=principal.name, role=principal.role.name, key_id=principal.key_id)


@router.get("/session", response_model=SessionInfo, responses={401: {}})
def whoami(who: Viewer) -> SessionInfo:
    return SessionInfo(name=who.name, role=who.role.name, key_id=who.key_id)


@router.delete("/session", status_code=204)
def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        request.app.state.auth.sessions.end(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
