"""Alerts: list, count, acknowledge, their pictures, and enrolling the face of one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
from fastapi import HTTPException, Query, Request, Response

from services.dashboard.api import (
    ENROL_ERRORS,
    JPEG,
    NOT_FOUND,
    api_router,
    existing_identity,
    jpeg_response,
    screen_faces,
    target_identity,
    target_name,
)
from services.dashboard.auth import Admin, Operator, audit, throttle
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.enrolment import store_faces
from services.dashboard.schemas import (
    Acknowledge,
    AlertCount,
    AlertEnrol,
    AlertEnrolled,
    AlertPublic,
    FaceSamplePublic,
    IdentityPublic,
)
from watchpost.db import alerts, identities
from watchpost.messages import AlertKind

router = api_router()


@router.get("/alerts", response_model=list[AlertPublic], tags=["alerts"])
def list_alerts(
    conn: ConnDep,
    kind: AlertKind | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    identity_id: int | None = None,
    acknowledged: bool | None = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601)")] = None,
    before_id: Annotated[
        int | None, Query(description="Keyset paging: alerts older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AlertPublic]:
    """Newest first; page with `before_id` = the last id of the previous page."""
    rows = alerts.list_alerts(
        conn,
        kind=kind,
        camera_id=camera_id,
        identity_id=identity_id,
        acknowledged=acknowledged,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return [alerts.alert_from_row(r) for r in rows]


@router.get("/alerts/stats", response_model=list[AlertCount], tags=["alerts"])
def alert_counts(
    conn: ConnDep,
    since: Annotated[datetime | None, Query(description="Default: 24 hours ago")] = None,
    until: datetime | None = None,
) -> list[AlertCount]:
    """Alerts per kind and hour (UTC), for a chart."""
    since = since or datetime.now(UTC) - timedelta(hours=24)
    return [
        AlertCount.model_validate(r) for r in alerts.counts_per_hour(conn, since=since, until=until)
    ]


@router.post(
    "/alerts/{alert_id}/ack", response_model=AlertPublic, tags=["alerts"], responses=NOT_FOUND
)
def acknowledge_alert(
    alert_id: int, body: Acknowledge, conn: ConnDep, who: Operator, request: Request
) -> AlertPublic:
    """Mark an alert as seen to, in the caller's name; acknowledging again keeps the first who
    and when."""
    row = alerts.acknowledge(conn, alert_id, by=who.actor)
    if row is None:
        raise HTTPException(404, detail=f"alert {alert_id} not found")
    audit(conn, request, who, "alert_acknowledge", "alert", alert_id, note=body.note)
    return alerts.alert_from_row(row)


@router.get("/alerts/{alert_id}", response_model=AlertPublic, tags=["alerts"], responses=NOT_FOUND)
def get_alert(alert_id: int, conn: ConnDep) -> AlertPublic:
    row = alerts.get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(404, detail=f"alert {alert_id} not found")
    return alerts.alert_from_row(row)


@router.get(
    "/alerts/{alert_id}/snapshot",
    tags=["alerts"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def get_snapshot(alert_id: int, conn: ConnDep) -> Response:
    """The frame of the alert with the face box and label drawn."""
    return jpeg_response(
        alerts.get_snapshot(conn, alert_id), f"alert {alert_id} has no snapshot or does not exist"
    )


@router.get(
    "/alerts/{alert_id}/face",
    tags=["alerts"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def get_alert_face(alert_id: int, conn: ConnDep) -> Response:
    """The face of the alert as the camera saw it (no drawing)."""
    return jpeg_response(
        alerts.get_face(conn, alert_id), f"alert {alert_id} has no face crop or does not exist"
    )


@router.post(
    "/alerts/{alert_id}/enrol",
    status_code=201,
    response_model=AlertEnrolled,
    tags=["alerts", "faces"],
    responses=ENROL_ERRORS,
)
def enrol_from_alert(
    alert_id: int,
    body: AlertEnrol,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Admin,
    request: Request,
    force: Annotated[
        bool, Query(description="Enrol a face refused as an outlier or a possible duplicate")
    ] = False,
) -> AlertEnrolled:
    """ "That unknown person is our new colleague": enrol the alert's face into an existing
    identity or a new one (checked against the gallery like any other photo)."""
    throttle(request, "enrol", who.key_id or who.name, settings.dashboard_enrol_per_minute)
    face_jpeg = alerts.get_face(conn, alert_id)
    if face_jpeg is None:
        raise HTTPException(404, detail=f"alert {alert_id} has no face crop or does not exist")
    target = existing_identity(conn, body.identity_id) if body.identity_id is not None else None
    accepted, rejected = screen_faces(
        [(face_jpeg, f"alert-{alert_id}.jpg")],
        identity_id=body.identity_id,
        name=target_name(body, target),
        settings=settings,
        largest=True,
        force=force,
    )
    if rejected:
        raise HTTPException(422, detail=f"alert {alert_id}: {rejected[0].reason}")
    (face,) = accepted
    identity_id = target_identity(conn, body)
    audit(conn, request, who, "faces_add", "identity", identity_id, count=1, alert_id=alert_id)
    try:
        (row,) = store_faces(conn, redis_client, keys, identity_id=identity_id, faces=[face])
    except psycopg.errors.ForeignKeyViolation:
        conn.rollback()
        raise HTTPException(404, detail=f"identity {identity_id} was deleted") from None
    return AlertEnrolled(
        identity=IdentityPublic.model_validate(identities.get_identity(conn, identity_id)),
        face=FaceSamplePublic.model_validate(row),
    )


# -- sightings -------------------------------------------------------------------------------
