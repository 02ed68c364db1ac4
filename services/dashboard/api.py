"""REST API `/api/v1`: identities and their faces, alerts and snapshots, cameras."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.enrolment import (
    EnrolmentError,
    RecognitionUnavailable,
    embed_single_face,
    enrol_face,
)
from services.dashboard.schemas import (
    AlertPublic,
    CameraPublic,
    FaceSamplePublic,
    IdentityCreate,
    IdentityPublic,
    Problem,
)
from watchpost.db import alerts, cameras, identities
from watchpost.db.identities import DuplicateLoginError
from watchpost.messages import AlertKind

router = APIRouter(prefix="/api/v1")
NOT_FOUND = {404: {"model": Problem}}


def alert_public(row: dict) -> AlertPublic:
    alert = AlertPublic.model_validate(row)
    if alert.has_snapshot:
        alert.snapshot_url = f"/api/v1/alerts/{alert.id}/snapshot"
    return alert


# -- identities -----------------------------------------------------------------------------
@router.post(
    "/identities",
    status_code=201,
    response_model=IdentityPublic,
    tags=["identities"],
    responses={409: {"model": Problem}},
)
def create_identity(body: IdentityCreate, conn: ConnDep) -> IdentityPublic:
    try:
        row = identities.create_identity(
            conn, display_name=body.display_name, login_name=body.login_name, metadata=body.metadata
        )
    except DuplicateLoginError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return IdentityPublic.model_validate(row)


@router.get("/identities", response_model=list[IdentityPublic], tags=["identities"])
def list_identities(
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[IdentityPublic]:
    return [
        IdentityPublic.model_validate(r)
        for r in identities.list_identities(conn, limit=limit, offset=offset)
    ]


@router.get(
    "/identities/{identity_id}",
    response_model=IdentityPublic,
    tags=["identities"],
    responses=NOT_FOUND,
)
def get_identity(identity_id: int, conn: ConnDep) -> IdentityPublic:
    row = identities.get_identity(conn, identity_id)
    if row is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    return IdentityPublic.model_validate(row)


@router.delete(
    "/identities/{identity_id}", status_code=204, tags=["identities"], responses=NOT_FOUND
)
def delete_identity(
    identity_id: int, conn: ConnDep, redis_client: RedisDep, keys: KeysDep
) -> Response:
    """Deletes the identity with every embedding and enrolment image of it."""
    if not identities.delete_identity(conn, identity_id):
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    conn.commit()
    redis_client.incr(keys.gallery_version)
    return Response(status_code=204)


@router.post(
    "/identities/{identity_id}/faces",
    status_code=201,
    response_model=FaceSamplePublic,
    tags=["identities"],
    responses={**NOT_FOUND, 422: {"model": Problem}, 503: {"model": Problem}},
)
async def add_face(
    identity_id: int,
    file: Annotated[UploadFile, File(description="A JPEG, PNG or WebP photo of exactly one face")],
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
) -> FaceSamplePublic:
    if await run_in_threadpool(identities.get_identity, conn, identity_id) is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    data = await file.read(settings.dashboard_max_upload_bytes + 1)
    try:
        rgb, box, embedding = await run_in_threadpool(
            embed_single_face,
            data,
            file.filename or "upload",
            recognition_url=settings.dashboard_recognition_url,
            max_bytes=settings.dashboard_max_upload_bytes,
        )
    except EnrolmentError as exc:
        raise HTTPException(422, detail=f"{file.filename or 'image'}: {exc}") from None
    except RecognitionUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
    try:
        row = await run_in_threadpool(
            enrol_face,
            conn,
            redis_client,
            keys,
            identity_id=identity_id,
            rgb=rgb,
            box=box,
            embedding=embedding,
        )
    except psycopg.errors.ForeignKeyViolation:  # deleted while its photo was being embedded
        conn.rollback()
        raise HTTPException(404, detail=f"identity {identity_id} was deleted") from None
    return FaceSamplePublic.model_validate(row)


# -- alerts ---------------------------------------------------------------------------------
@router.get("/alerts", response_model=list[AlertPublic], tags=["alerts"])
def list_alerts(
    conn: ConnDep,
    kind: AlertKind | None = None,
    camera_id: str | None = None,
    before_id: Annotated[
        int | None, Query(description="Keyset paging: alerts older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AlertPublic]:
    """Newest first."""
    rows = alerts.list_alerts(
        conn, kind=kind, camera_id=camera_id, before_id=before_id, limit=limit
    )
    return [alert_public(r) for r in rows]


@router.get("/alerts/{alert_id}", response_model=AlertPublic, tags=["alerts"], responses=NOT_FOUND)
def get_alert(alert_id: int, conn: ConnDep) -> AlertPublic:
    row = alerts.get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(404, detail=f"alert {alert_id} not found")
    return alert_public(row)


@router.get(
    "/alerts/{alert_id}/snapshot",
    tags=["alerts"],
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}}},
)
def get_snapshot(alert_id: int, conn: ConnDep) -> Response:
    jpeg = alerts.get_snapshot(conn, alert_id)
    if jpeg is None:
        raise HTTPException(404, detail=f"alert {alert_id} has no snapshot or does not exist")
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )


# -- cameras --------------------------------------------------------------------------------
@router.get("/cameras", response_model=list[CameraPublic], tags=["cameras"])
def list_cameras(conn: ConnDep) -> list[CameraPublic]:
    return [CameraPublic.model_validate(r) for r in cameras.list_cameras(conn)]
