"""Who may call a service: API keys for people and kiosks, internal tokens between services."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from watchpost.auth import (
    AuthError,
    Principal,
    RateLimited,
    Role,
    bearer,
    check_key,
    same_secret,
)
from watchpost.service.app import Resources
from watchpost.settings import CommonSettings

log = logging.getLogger(__name__)


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
