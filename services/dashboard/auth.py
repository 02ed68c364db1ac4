"""Dashboard access control: who is calling, what their role allows, page login, audit.

A caller is an API key (`Authorization: Bearer wp_...`) or a page session (the session cookie set
by `POST /api/v1/session`). Service tokens are not accepted here at all, and kiosk keys are
refused: they may only verify logins at recognition. Every route names the least role it needs.

A cookie rides along with every request the browser makes to this host, whichever page asked for
it (SameSite does not tell ports apart), so a cookie-authenticated unsafe request must come from
the dashboard's own origin (Sec-Fetch-Site, else Origin); a request with a key in its
Authorization header cannot be forged that way and is not checked.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from watchpost.auth import (
    AuthError,
    FailureThrottle,
    KeyVerifier,
    Principal,
    RateLimited,
    Role,
    Sessions,
    bearer,
    check_key,
    rate_limit,
)
from watchpost.db import audit_log
from watchpost.keys import Keys
from watchpost.service import Resources
from watchpost.settings import DashboardSettings

log = logging.getLogger(__name__)
SESSION_COOKIE = "watchpost_session"
# Over HTTPS: a browser takes a `__Host-` cookie only when Secure, for path / and without a
# Domain, so neither a sibling subdomain nor a plain-HTTP page can plant or overwrite it.
SECURE_SESSION_COOKIE = "__Host-watchpost_session"
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KIOSK_REFUSED = "kiosk keys can only verify logins at recognition"


def session_cookie(settings: DashboardSettings) -> str:
    return SECURE_SESSION_COOKIE if settings.dashboard_secure_cookies else SESSION_COOKIE


class AuthState:
    """What the dashboard process keeps to check callers (built in the app's setup)."""

    def __init__(self, resources: Resources[DashboardSettings]) -> None:
        settings = resources.settings
        prefix = Keys(settings.stream_prefix).prefix
        self.resources = resources
        self.cookie = session_cookie(settings)
        self.allowed_origins: list[str] = settings.dashboard_cors_origins
        assert resources.verifier is not None
        self.pool = resources.require_pool()
        self.verifier: KeyVerifier = resources.verifier
        self.throttle: FailureThrottle = resources.throttle
        self.sessions = Sessions(
            resources.redis, prefix, ttl_seconds=settings.dashboard_session_hours * 3600
        )

    def identify(self, connection: HTTPConnection) -> Principal | None:
        """The caller of a request or websocket, or None (blocking: run it in a thread).
        Raises RateLimited when the client address failed too many key checks."""
        token = bearer(connection.headers.get("authorization"))
        if token is not None:
            try:
                return check_key(self.verifier, self.throttle, token, client_address(connection))
            except AuthError:
                return None
        return self.session_principal(connection)

    def session_principal(self, connection: HTTPConnection) -> Principal | None:
        session = connection.cookies.get(self.cookie)
        principal = self.sessions.get(session) if session else None
        # A revoked key ends its sessions too.
        if principal is not None and principal.key_id and self.verifier.key_live(principal.key_id):
            return principal
        return None

    def still_signed_in(self, connection: HTTPConnection, principal: Principal) -> bool:
        """Whether what let an open websocket or live view in still stands, asked now: the
        session not ended or expired, the key not revoked (blocking: run it in a thread)."""
        if bearer(connection.headers.get("authorization")) is not None:
            return principal.key_id is not None and self.verifier.key_live(principal.key_id)
        return self.session_principal(connection) is not None

    def by_cookie(self, connection: HTTPConnection) -> bool:
        return bearer(connection.headers.get("authorization")) is None


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def too_many(exc: RateLimited) -> HTTPException:
    return HTTPException(429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)})


async def authenticate(connection: HTTPConnection) -> Principal:
    principal = getattr(connection.state, "principal", None)  # routes with two role checks
    if principal is not None:
        return principal
    state: AuthState = connection.app.state.auth
    try:
        principal = await run_in_threadpool(state.identify, connection)
    except RateLimited as exc:
        raise too_many(exc) from None
    if principal is None:
        raise HTTPException(401, detail="sign in or send an API key", headers=UNAUTHORIZED)
    if principal.role is Role.kiosk:
        raise HTTPException(403, detail=KIOSK_REFUSED)
    if connection.scope.get("method") in UNSAFE_METHODS and state.by_cookie(connection):
        refuse_other_sites(connection, state.allowed_origins)
    connection.state.principal = principal
    return principal


def refuse_other_sites(connection: HTTPConnection, allowed: list[str]) -> None:
    """403 for a request another site's page made the browser send (with its cookie)."""
    if from_another_site(connection, allowed):
        raise HTTPException(403, detail="cross-site request refused")


def from_another_site(connection: HTTPConnection, allowed: list[str]) -> bool:
    """Sec-Fetch-Site (every current browser) says whether the page that made the request is of
    this very origin; `same-site` is not enough, it covers other ports of this host. Without it,
    the Origin header must be the dashboard's own or a configured one. A request with neither
    is not a browser's (nothing rides an ambient cookie there)."""
    site = connection.headers.get("sec-fetch-site")
    if site in ("same-origin", "none"):  # none: typed or bookmarked by the user
        return False
    if site is not None and connection.headers.get("origin") is None:
        return True
    return not same_origin(connection, allowed)


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
    audit_log.audit(
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
            keys.rate_limit(bucket, who),
            limit=per_minute,
            window_seconds=60,
        )
    except RateLimited as exc:
        raise too_many(exc) from None


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


@router.post("/session", response_model=SessionInfo, responses={401: {}, 403: {}, 429: {}})
def login(body: Login, request: Request, response: Response) -> SessionInfo:
    """Sign the page in with an API key; sets an HttpOnly session cookie."""
    state: AuthState = request.app.state.auth
    settings = request.app.state.resources.settings
    refuse_other_sites(request, state.allowed_origins)  # nor may another site sign us in
    throttle(request, "login", client_address(request), settings.dashboard_login_per_minute)
    try:
        principal = state.verifier.check_uncached(body.key)  # holds no connection while hashing
    except AuthError:
        with state.pool.connection() as conn:
            audit_log.audit(
                conn,
                actor="anonymous",
                role="none",
                action="login_failed",
                client=client_address(request),
            )
        raise HTTPException(401, detail="wrong, revoked or malformed key") from None
    if principal.role is Role.kiosk:
        raise HTTPException(403, detail=KIOSK_REFUSED)
    token = state.sessions.start(principal)
    response.set_cookie(
        state.cookie,
        token,
        max_age=int(settings.dashboard_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_secure_cookies,
        path="/",
    )
    with state.pool.connection() as conn:
        audit(conn, request, principal, "login")
    return SessionInfo(name=principal.name, role=principal.role.name, key_id=principal.key_id)


@router.get("/session", response_model=SessionInfo, responses={401: {}})
def whoami(who: Viewer) -> SessionInfo:
    return SessionInfo(name=who.name, role=who.role.name, key_id=who.key_id)


@router.delete("/session", status_code=204, responses={403: {}})
def logout(request: Request) -> Response:
    state: AuthState = request.app.state.auth
    refuse_other_sites(request, state.allowed_origins)
    token = request.cookies.get(state.cookie)
    if token:
        state.sessions.end(token)
    response = Response(status_code=204)
    response.delete_cookie(
        state.cookie,
        path="/",
        secure=request.app.state.resources.settings.dashboard_secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response
