"""REST API `/api/v1`: identities and their faces, alerts and snapshots, sightings and unknown
groups, cameras."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
import redis
from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.dashboard.auth import VIEWER, Admin, Operator, Viewer, audit, throttle
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.enrolment import (
    CheckedFace,
    EnrolmentError,
    FaceRules,
    RecognitionUnavailable,
    check_face,
    gallery_changed,
    gallery_check,
    store_faces,
)
from services.dashboard.schemas import (
    Acknowledge,
    AlertCount,
    AlertEnrol,
    AlertEnrolled,
    AlertPublic,
    AuditEntry,
    CameraCreate,
    CameraPublic,
    CameraUpdate,
    EnrolmentResult,
    EnrolTarget,
    FaceRejection,
    FaceSamplePublic,
    GroupNamed,
    IdentityCreate,
    IdentityDetail,
    IdentityPage,
    IdentityPublic,
    IdentityUpdate,
    Problem,
    SightingPublic,
    UnknownGroupPublic,
)
from watchpost.auth import Principal, Role
from watchpost.db import Conn, Row, access, alerts, cameras, identities, sightings
from watchpost.db.identities import DuplicateLoginError
from watchpost.erasure import forget_person
from watchpost.messages import AlertKind
from watchpost.service import service_headers
from watchpost.settings import DashboardSettings
from watchpost.sources import SourceNotAllowed, redact

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", dependencies=VIEWER)  # each write route asks for more
# OpenAPI answers added to a route's own (FastAPI's `responses`).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Problem}}
JPEG: Responses = {200: {"content": {"image/jpeg": {}}}}


def alert_public(row: dict) -> AlertPublic:
    alert = AlertPublic.model_validate(row)
    if alert.has_snapshot:
        alert.snapshot_url = f"/api/v1/alerts/{alert.id}/snapshot"
    if alert.has_face:
        alert.face_url = f"/api/v1/alerts/{alert.id}/face"
    return alert


def sighting_public(row: dict) -> SightingPublic:
    sighting = SightingPublic.model_validate(row)
    if sighting.has_snapshot:
        sighting.snapshot_url = f"/api/v1/sightings/{sighting.id}/snapshot"
    if sighting.has_face:
        sighting.face_url = f"/api/v1/sightings/{sighting.id}/face"
    return sighting


def group_public(row: dict) -> UnknownGroupPublic:
    group = UnknownGroupPublic.model_validate(row)
    if group.best_sighting_id is not None:
        group.face_url = f"/api/v1/sightings/{group.best_sighting_id}/face"
    return group


LAST_SIGHTINGS = 10  # what a person's view shows of where they were seen


def jpeg_response(data: bytes | None, missing: str) -> Response:
    if data is None:
        raise HTTPException(404, detail=missing)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


def rules(settings: DashboardSettings, *, largest: bool, force: bool = False) -> FaceRules:
    return FaceRules(
        max_bytes=settings.dashboard_max_upload_bytes,
        min_face_px=settings.dashboard_min_face_px,
        min_sharpness=settings.dashboard_min_sharpness,
        largest=largest,
        outlier_distance=settings.dashboard_enrol_outlier_distance,
        duplicate_distance=settings.dashboard_enrol_duplicate_distance,
        force=force,
    )


def existing_identity(conn: Conn, identity_id: int) -> Row:
    row = identities.get_identity(conn, identity_id)
    if row is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    return row


def target_identity(conn: Conn, body: AlertEnrol) -> int:
    """The identity a request names, or a new one created under its display name."""
    if body.identity_id is not None:
        return body.identity_id
    if body.display_name is None:  # the model's validator already refuses this
        raise HTTPException(422, detail="give either identity_id or display_name")
    try:
        row = identities.create_identity(
            conn, display_name=body.display_name, login_name=body.login_name
        )
    except DuplicateLoginError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return int(row["id"])


def target_check(
    conn: Conn, body: AlertEnrol, target: Row | None, face_rules: FaceRules
) -> Callable[[CheckedFace], None]:
    """The gallery checks for faces bound for the request's identity (or a new person, -1),
    under the name its refusals use."""
    name = str(target["display_name"]) if target else str(body.display_name)
    identity_id = body.identity_id if body.identity_id is not None else -1
    return gallery_check(conn, identity_id, name, face_rules)


# -- identities -----------------------------------------------------------------------------
@router.post(
    "/identities",
    status_code=201,
    response_model=IdentityPublic,
    tags=["identities"],
    responses={409: {"model": Problem}},
)
def create_identity(
    body: IdentityCreate, conn: ConnDep, who: Admin, request: Request
) -> IdentityPublic:
    try:
        row = identities.create_identity(
            conn, display_name=body.display_name, login_name=body.login_name, metadata=body.metadata
        )
    except DuplicateLoginError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    audit(conn, request, who, "identity_create", "identity", row["id"])
    return IdentityPublic.model_validate({**row, "face_count": 0})


@router.get("/identities", response_model=IdentityPage, tags=["identities"])
def list_identities(
    conn: ConnDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of a display or login name")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> IdentityPage:
    rows, total = identities.list_identities(conn, search=q, limit=limit, offset=offset)
    items = [IdentityPublic.model_validate(r) for r in rows]
    return IdentityPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/identities/{identity_id}",
    response_model=IdentityDetail,
    tags=["identities"],
    responses=NOT_FOUND,
)
def get_identity(identity_id: int, conn: ConnDep) -> IdentityDetail:
    """The person, with their last sightings (all of them: `/sightings?identity_id=`)."""
    row = existing_identity(conn, identity_id)
    seen = sightings.list_sightings(conn, identity_id=identity_id, limit=LAST_SIGHTINGS)
    return IdentityDetail.model_validate(
        {**row, "last_sightings": [sighting_public(r) for r in seen]}
    )


@router.patch(
    "/identities/{identity_id}",
    response_model=IdentityPublic,
    tags=["identities"],
    responses={**NOT_FOUND, 409: {"model": Problem}},
)
def update_identity(
    identity_id: int,
    body: IdentityUpdate,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    who: Admin,
    request: Request,
) -> IdentityPublic:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("display_name", "") is None:
        raise HTTPException(422, detail="display_name cannot be null")
    try:
        row = identities.update_identity(conn, identity_id, **changes)
    except DuplicateLoginError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    if row is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    audit(conn, request, who, "identity_update", "identity", identity_id, fields=sorted(changes))
    if "display_name" in changes:  # names travel with the gallery
        gallery_changed(conn, redis_client, keys, identity_id)
    return IdentityPublic.model_validate(row)


@router.delete(
    "/identities/{identity_id}", status_code=204, tags=["identities"], responses=NOT_FOUND
)
def delete_identity(
    identity_id: int,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    who: Admin,
    request: Request,
) -> Response:
    """Erases the person: every embedding and enrolment image; their sightings; their name,
    snapshots and face crops in past alerts (the alert records stay, unnamed); and what Redis
    holds about them (verdicts that matched them, the scrubbed alerts' events, track labels,
    live frames)."""
    erased = access.erase_identity(conn, identity_id)
    if erased is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")

    def forget() -> dict[str, int]:
        return forget_person(
            redis_client,
            keys,
            identity_id=identity_id,
            alert_ids=erased["alert_ids"],
            names=erased["names"],
        )

    try:
        removed = forget()  # before the commit: if Redis is away, nothing is erased yet
    except redis.RedisError as exc:
        raise HTTPException(
            503, detail=f"nothing was erased: Redis is unreachable ({exc}); try again"
        ) from None
    audit(
        conn,
        request,
        who,
        "identity_erase",
        "identity",
        identity_id,
        faces=erased["faces"],
        sightings=erased["sightings"],
        alerts_scrubbed=erased["alerts_scrubbed"],
        redis_removed=removed,
    )
    # Commits, then every recognition replica drops the person at its next look.
    gallery_changed(conn, redis_client, keys, identity_id)
    try:
        forget()  # what was decided about them while the erasure committed
    except redis.RedisError as exc:
        log.warning("identity %s: Redis not scrubbed a second time: %s", identity_id, exc)
    return Response(status_code=204)


# -- face samples ---------------------------------------------------------------------------
@router.post(
    "/identities/{identity_id}/faces",
    status_code=201,
    response_model=EnrolmentResult,
    tags=["faces"],
    responses={**NOT_FOUND, 422: {"model": EnrolmentResult | Problem}, 503: {"model": Problem}},
)
async def add_faces(
    identity_id: int,
    file: Annotated[
        list[UploadFile], File(description="One or more JPEG/PNG/WebP photos, one face each")
    ],
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Admin,
    request: Request,
    largest: Annotated[bool, Query(description="With several faces, enrol the largest")] = False,
    force: Annotated[
        bool, Query(description="Enrol photos refused as outliers or possible duplicates")
    ] = False,
):
    """Each photo is checked (one face, large and sharp enough, like the person's other photos
    and unlike anyone else's); accepted ones are stored even when others are rejected, and the
    answer is then 422 with the reason per rejected file."""
    await run_in_threadpool(
        throttle, request, "enrol", who.key_id or who.name, settings.dashboard_enrol_per_minute
    )
    identity = await run_in_threadpool(existing_identity, conn, identity_id)
    if len(file) > settings.dashboard_max_files:
        raise HTTPException(
            413, detail=f"at most {settings.dashboard_max_files} photos per request"
        )
    face_rules = rules(settings, largest=largest, force=force)
    against_gallery = await run_in_threadpool(
        gallery_check, conn, identity_id, identity["display_name"], face_rules
    )
    accepted: list[CheckedFace] = []
    rejected: list[FaceRejection] = []
    for upload in file:
        name = upload.filename or "upload"
        data = await upload.read(settings.dashboard_max_upload_bytes + 1)
        try:
            face = await run_in_threadpool(
                check_face,
                data,
                name,
                recognition_url=settings.dashboard_recognition_url,
                headers=service_headers(settings),
                rules=face_rules,
            )
            against_gallery(face)
            accepted.append(face)
        except EnrolmentError as exc:
            rejected.append(FaceRejection(filename=name, reason=str(exc)))
        except RecognitionUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from None
    try:
        if accepted:
            await run_in_threadpool(
                audit, conn, request, who, "faces_add", "identity", identity_id, count=len(accepted)
            )
        rows = await run_in_threadpool(
            store_faces, conn, redis_client, keys, identity_id=identity_id, faces=accepted
        )
    except psycopg.errors.ForeignKeyViolation:  # deleted while its photos were being checked
        conn.rollback()
        raise HTTPException(404, detail=f"identity {identity_id} was deleted") from None
    result = EnrolmentResult(
        detail="; ".join(f"{r.filename}: {r.reason}" for r in rejected),
        accepted=[FaceSamplePublic.model_validate(r) for r in rows],
        rejected=rejected,
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=422 if rejected else 201)


@router.get(
    "/identities/{identity_id}/faces",
    response_model=list[FaceSamplePublic],
    tags=["faces"],
    responses=NOT_FOUND,
)
def list_faces(identity_id: int, conn: ConnDep) -> list[FaceSamplePublic]:
    existing_identity(conn, identity_id)
    return [FaceSamplePublic.model_validate(r) for r in identities.list_faces(conn, identity_id)]


@router.get(
    "/faces/{face_id}/image",
    tags=["faces"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def face_image(face_id: int, conn: ConnDep) -> Response:
    """The enrolment crop of a face sample."""
    return jpeg_response(identities.face_image(conn, face_id), f"face {face_id} not found")


@router.delete("/faces/{face_id}", status_code=204, tags=["faces"], responses=NOT_FOUND)
def delete_face(
    face_id: int,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    who: Admin,
    request: Request,
) -> Response:
    owner = identities.delete_face(conn, face_id)
    if owner is None:
        raise HTTPException(404, detail=f"face {face_id} not found")
    audit(conn, request, who, "face_delete", "face", face_id)
    gallery_changed(conn, redis_client, keys, owner)
    return Response(status_code=204)


# -- alerts ---------------------------------------------------------------------------------
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
    return [alert_public(r) for r in rows]


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
    return alert_public(row)


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
    responses={
        **NOT_FOUND,
        409: {"model": Problem},
        422: {"model": Problem},
        503: {"model": Problem},
    },
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
    try:
        face = check_face(
            face_jpeg,
            f"alert-{alert_id}.jpg",
            recognition_url=settings.dashboard_recognition_url,
            headers=service_headers(settings),
            rules=rules(settings, largest=True),
        )
        target_check(conn, body, target, rules(settings, largest=True, force=force))(face)
    except EnrolmentError as exc:
        raise HTTPException(422, detail=f"alert {alert_id}: {exc}") from None
    except RecognitionUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
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
@router.get("/sightings", response_model=list[SightingPublic], tags=["sightings"])
def list_sightings(
    conn: ConnDep,
    identity_id: int | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    group_id: int | None = None,
    known: Annotated[
        bool | None, Query(description="true: enrolled people only; false: unknown faces only")
    ] = None,
    since: Annotated[datetime | None, Query(description="Last seen at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="First seen before (ISO 8601)")] = None,
    before_id: Annotated[
        int | None, Query(description="Keyset paging: sightings older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[SightingPublic]:
    """Every identified track on record (a sighting is not an alarm), newest first; page with
    `before_id` = the last id of the previous page."""
    rows = sightings.list_sightings(
        conn,
        identity_id=identity_id,
        camera_id=camera_id,
        group_id=group_id,
        known=known,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return [sighting_public(r) for r in rows]


@router.get(
    "/sightings/{sighting_id}",
    response_model=SightingPublic,
    tags=["sightings"],
    responses=NOT_FOUND,
)
def get_sighting(sighting_id: int, conn: ConnDep) -> SightingPublic:
    row = sightings.get_sighting(conn, sighting_id)
    if row is None:
        raise HTTPException(404, detail=f"sighting {sighting_id} not found")
    return sighting_public(row)


@router.get(
    "/sightings/{sighting_id}/snapshot",
    tags=["sightings"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def get_sighting_snapshot(sighting_id: int, conn: ConnDep) -> Response:
    """The track's best frame with the face box drawn (no name)."""
    return jpeg_response(
        sightings.get_snapshot(conn, sighting_id),
        f"sighting {sighting_id} has no snapshot or does not exist",
    )


@router.get(
    "/sightings/{sighting_id}/face",
    tags=["sightings"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def get_sighting_face(sighting_id: int, conn: ConnDep) -> Response:
    """The track's best face as the camera saw it."""
    return jpeg_response(
        sightings.get_face(conn, sighting_id),
        f"sighting {sighting_id} has no face crop or does not exist",
    )


# -- unknown groups ---------------------------------------------------------------------------
@router.get("/unknown-groups", response_model=list[UnknownGroupPublic], tags=["sightings"])
def list_unknown_groups(
    conn: ConnDep,
    named: Annotated[
        bool | None, Query(description="false (default): still to name; true: named; all if unset")
    ] = False,
    before_id: Annotated[int | None, Query(description="Groups older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[UnknownGroupPublic]:
    """Unknown faces grouped: the same stranger on several tracks or cameras is one group. Its
    sightings: `/sightings?group_id=`."""
    return [
        group_public(r)
        for r in sightings.list_groups(conn, named=named, before_id=before_id, limit=limit)
    ]


@router.get(
    "/unknown-groups/{group_id}",
    response_model=UnknownGroupPublic,
    tags=["sightings"],
    responses=NOT_FOUND,
)
def get_unknown_group(group_id: int, conn: ConnDep) -> UnknownGroupPublic:
    row = sightings.get_group(conn, group_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown group {group_id} not found")
    return group_public(row)


@router.post(
    "/unknown-groups/{group_id}/name",
    status_code=201,
    response_model=GroupNamed,
    tags=["sightings", "faces"],
    responses={
        **NOT_FOUND,
        409: {"model": Problem},
        422: {"model": Problem},
        503: {"model": Problem},
    },
)
def name_unknown_group(
    group_id: int,
    body: EnrolTarget,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Admin,
    request: Request,
    force: Annotated[
        bool, Query(description="Enrol faces refused as outliers or possible duplicates")
    ] = False,
) -> GroupNamed:
    """Name the stranger once: every face of the group goes through the enrolment checks into
    an existing identity or a new one, and the group's sightings become that person's. Faces
    that fail a check are listed and left out; when none passes, nothing changes (422)."""
    throttle(request, "enrol", who.key_id or who.name, settings.dashboard_enrol_per_minute)
    group = sightings.get_group(conn, group_id)
    if group is None:
        raise HTTPException(404, detail=f"unknown group {group_id} not found")
    if group["named_identity_id"] is not None:
        raise HTTPException(
            409,
            detail=f"unknown group {group_id} is already named (identity "
            f"{group['named_identity_id']})",
        )
    target = existing_identity(conn, body.identity_id) if body.identity_id is not None else None
    faces = sightings.group_faces(conn, group_id)
    if not faces:
        raise HTTPException(422, detail=f"unknown group {group_id} has no face crops to enrol")
    # The same checks as every enrolment: against the person's photos and everyone else's.
    against_gallery = target_check(conn, body, target, rules(settings, largest=True, force=force))
    accepted: list[CheckedFace] = []
    rejected: list[FaceRejection] = []
    for face in faces[: settings.dashboard_max_files]:
        name = f"sighting-{face['id']}.jpg"
        try:
            checked = check_face(
                face["face_jpeg"],
                name,
                recognition_url=settings.dashboard_recognition_url,
                headers=service_headers(settings),
                rules=rules(settings, largest=True),
            )
            against_gallery(checked)
            accepted.append(checked)
        except EnrolmentError as exc:
            rejected.append(FaceRejection(filename=name, reason=str(exc)))
        except RecognitionUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from None
    if not accepted:
        raise HTTPException(
            422,
            detail="no face of the group passed the enrolment checks: "
            + "; ".join(f"{r.filename}: {r.reason}" for r in rejected),
        )
    locked = sightings.get_group(conn, group_id, lock=True)  # named meanwhile by someone else?
    if locked is None or locked["named_identity_id"] is not None:
        conn.rollback()
        raise HTTPException(409, detail=f"unknown group {group_id} was named meanwhile")
    identity_id = target_identity(conn, body)
    try:
        moved = sightings.name_group(conn, group_id, identity_id)
        audit(
            conn,
            request,
            who,
            "faces_add",
            "identity",
            identity_id,
            count=len(accepted),
            unknown_group=group_id,
        )
        rows = store_faces(conn, redis_client, keys, identity_id=identity_id, faces=accepted)
    except psycopg.errors.ForeignKeyViolation:
        conn.rollback()
        raise HTTPException(404, detail=f"identity {identity_id} was deleted") from None
    return GroupNamed(
        identity=IdentityPublic.model_validate(identities.get_identity(conn, identity_id)),
        sightings=moved,
        accepted=[FaceSamplePublic.model_validate(r) for r in rows],
        rejected=rejected,
    )


# -- cameras --------------------------------------------------------------------------------
def cameras_changed(conn, redis_client, keys) -> None:
    conn.commit()  # durable before capture is told to reconcile
    redis_client.incr(keys.cameras_version)


def camera_public(row: dict, who: Principal) -> CameraPublic:
    """A camera as `who` may see it: its source's credentials only for admins; never in the
    last error (capture redacts what it stores; this covers rows from before it did)."""
    camera = CameraPublic.model_validate(row)
    changes: dict = {"last_error": redact(camera.last_error) if camera.last_error else None}
    if not who.may(Role.admin):
        changes["source"] = redact(camera.source)
    return camera.model_copy(update=changes)


def allowed_source(source: str, settings: DashboardSettings) -> None:
    """422 for a camera source outside the allow-list (WATCHPOST_CAMERA_SOURCE_*)."""
    try:
        settings.source_policy().check(source)
    except SourceNotAllowed as exc:
        raise HTTPException(422, detail=f"camera source not allowed: {exc}") from None


@router.get("/cameras", response_model=list[CameraPublic], tags=["cameras"])
def list_cameras(conn: ConnDep, who: Viewer) -> list[CameraPublic]:
    """Every camera with what capture last reported: status, fps, last frame, last error. Below
    admin, credentials in sources are shown as `***`."""
    return [camera_public(r, who) for r in cameras.list_cameras(conn)]


@router.post(
    "/cameras",
    status_code=201,
    response_model=CameraPublic,
    tags=["cameras"],
    responses={409: {"model": Problem}, 422: {"model": Problem}},
)
def create_camera(
    body: CameraCreate,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Admin,
    request: Request,
) -> CameraPublic:
    """Capture starts reading it within a few seconds, without a restart. The source must be
    within the allow-list (kinds, networks, folders: WATCHPOST_CAMERA_SOURCE_*)."""
    allowed_source(body.source, settings)
    row = cameras.create_camera(
        conn,
        camera_id=body.id,
        name=body.name,
        source=body.source,
        enabled=body.enabled,
        claimed_login=body.claimed_login,
    )
    if row is None:
        raise HTTPException(409, detail=f"camera {body.id!r} already exists")
    audit(conn, request, who, "camera_create", "camera", body.id)
    cameras_changed(conn, redis_client, keys)
    return camera_public(row, who)


@router.get(
    "/cameras/{camera_id}", response_model=CameraPublic, tags=["cameras"], responses=NOT_FOUND
)
def get_camera(camera_id: str, conn: ConnDep, who: Viewer) -> CameraPublic:
    row = cameras.get_camera(conn, camera_id)
    if row is None:
        raise HTTPException(404, detail=f"camera {camera_id!r} not found")
    return camera_public(row, who)


@router.patch(
    "/cameras/{camera_id}",
    response_model=CameraPublic,
    tags=["cameras"],
    responses={**NOT_FOUND, 422: {"model": Problem}},
)
def update_camera(
    camera_id: str,
    body: CameraUpdate,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Admin,
    request: Request,
) -> CameraPublic:
    """Rename, point at another source (within the allow-list), enable or disable; capture
    follows."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("source") is not None:
        allowed_source(changes["source"], settings)
    row = cameras.update_camera(conn, camera_id, **changes)
    if row is None:
        raise HTTPException(404, detail=f"camera {camera_id!r} not found")
    audit(conn, request, who, "camera_update", "camera", camera_id, fields=sorted(changes))
    cameras_changed(conn, redis_client, keys)
    return camera_public(row, who)


@router.delete("/cameras/{camera_id}", status_code=204, tags=["cameras"], responses=NOT_FOUND)
def delete_camera(
    camera_id: str,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    who: Admin,
    request: Request,
) -> Response:
    """Capture stops reading it; its alerts stay."""
    if not cameras.delete_camera(conn, camera_id):
        raise HTTPException(404, detail=f"camera {camera_id!r} not found")
    audit(conn, request, who, "camera_delete", "camera", camera_id)
    cameras_changed(conn, redis_client, keys)
    return Response(status_code=204)


# -- audit ----------------------------------------------------------------------------------
@router.get("/audit", response_model=list[AuditEntry], tags=["audit"])
def audit_log(
    conn: ConnDep,
    who: Admin,
    before_id: Annotated[int | None, Query(ge=1, description="Entries older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntry]:
    """Who enrolled, erased, acknowledged, changed cameras or signed in; newest first."""
    return [
        AuditEntry.model_validate(r)
        for r in access.list_audit(conn, limit=limit, before_id=before_id)
    ]
