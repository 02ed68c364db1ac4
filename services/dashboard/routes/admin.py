"""Admin-only routes: API keys (list, create, revoke) and the calibration report
recognition computes (proxied, so the page needs no second origin or service token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.dashboard.api import api_router
from services.dashboard.auth import Admin, audit
from services.dashboard.deps import ConnDep, SettingsDep
from services.dashboard.schemas import Name, Problem
from watchpost.auth import Role, create_key
from watchpost.db import api_keys
from watchpost.service import service_headers

router = api_router()

# The roles a key made from the page may have (kiosk keys too: a login kiosk needs one).
KeyRole = Literal["viewer", "operator", "admin", "kiosk"]


class KeyPublic(BaseModel):
    """An API key as listed: never its secret or the secret's hash."""

    id: int
    key_id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: KeyRole


class KeyCreated(KeyPublic):
    key: str = Field(description="The full key: shown in this answer only, never again.")


def key_public(row: dict[str, Any]) -> KeyPublic:
    return KeyPublic.model_validate({k: v for k, v in row.items() if k != "secret_hash"})


@router.get("/keys", tags=["admin"], response_model=list[KeyPublic])
def list_keys(
    conn: ConnDep,
    who: Admin,
    include_revoked: Annotated[bool, Query(description="Revoked keys too")] = False,
) -> list[KeyPublic]:
    """Every live key (and revoked ones on request), oldest first, without secrets."""
    return [key_public(r) for r in api_keys.list_keys(conn, include_revoked=include_revoked)]


@router.post(
    "/keys", tags=["admin"], status_code=201, response_model=KeyCreated, responses={422: {}}
)
def create_api_key(body: KeyCreate, conn: ConnDep, who: Admin, request: Request) -> KeyCreated:
    """A new key with the role; its secret is in this answer only (store it now)."""
    key, row = create_key(conn, name=body.name, role=Role[body.role])
    audit(
        conn, request, who, "key_create", "api_key", row["key_id"], name=body.name, role=body.role
    )
    return KeyCreated.model_validate({**key_public(row).model_dump(), "key": key})


@router.delete(
    "/keys/{key_id}",
    tags=["admin"],
    response_model=KeyPublic,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def revoke_api_key(key_id: str, conn: ConnDep, who: Admin, request: Request) -> KeyPublic:
    """Revoke a key (by its key id): its sessions end with it. The last live admin key is not
    revoked (409): nobody could manage keys from the page any more."""
    live = {r["key_id"]: r for r in api_keys.list_keys(conn)}
    target = live.get(key_id)
    if target is None:
        raise HTTPException(404, detail=f"no live key {key_id!r}")
    if target["role"] == "admin" and api_keys.count_admin_keys(conn) <= 1:
        raise HTTPException(409, detail="this is the last admin key; create another one first")
    row = api_keys.revoke_key(conn, key_id)
    if row is None:  # revoked meanwhile
        raise HTTPException(404, detail=f"no live key {key_id!r}")
    audit(conn, request, who, "key_revoke", "api_key", key_id, name=row["name"], role=row["role"])
    request.app.state.auth.verifier.forget()  # no cached good check outlives the revocation
    return key_public(row)


@router.get(
    "/calibration",
    tags=["admin"],
    responses={
        200: {"content": {"application/json": {}, "image/svg+xml": {}}},
        409: {"model": Problem, "description": "too few people or photos enrolled"},
        503: {"model": Problem, "description": "recognition is not reachable"},
    },
)
def calibration(
    who: Admin,
    settings: SettingsDep,
    target_far: Annotated[float | None, Query(gt=0, lt=1)] = None,
    format: Annotated[Literal["json", "svg"], Query()] = "json",
) -> Response:
    """Recognition's calibration of the enrolled gallery (false-accept / false-reject curve,
    the suggested 1:N threshold): JSON, or the plot as SVG."""
    params: dict[str, str] = {"format": format}
    if target_far is not None:
        params["target_far"] = repr(target_far)
    try:
        answer = httpx.get(
            f"{settings.dashboard_recognition_url.rstrip('/')}/v1/calibration",
            params=params,
            headers=service_headers(settings),
            timeout=60.0,
        )
    except httpx.HTTPError as exc:
        raise HTTPException(503, detail=f"recognition service unreachable: {exc}") from None
    if answer.status_code == 409:
        raise HTTPException(409, detail=answer.json().get("detail", "cannot calibrate"))
    if answer.status_code != 200:
        raise HTTPException(503, detail=f"recognition service answered {answer.status_code}")
    media = "image/svg+xml" if format == "svg" else "application/json"
    return Response(answer.content, media_type=media, headers={"Cache-Control": "no-store"})
