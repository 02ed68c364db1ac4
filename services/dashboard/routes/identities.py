"""People and their enrolled faces: /api/v1/identities, /api/v1/faces."""

from __future__ import annotations

import logging
from typing import Annotated

import psycopg
import redis
from fastapi import File, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.dashboard.api import (
    JPEG,
    LAST_SIGHTINGS,
    NOT_FOUND,
    api_router,
    existing_identity,
    jpeg_response,
    screen_faces,
    sighting_public,
)
from services.dashboard.auth import Admin, audit, throttle
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.enrolment import gallery_changed, store_faces
from services.dashboard.schemas import (
    EnrolmentResult,
    FaceSamplePublic,
    IdentityCreate,
    IdentityDetail,
    IdentityPage,
    IdentityPublic,
    IdentityUpdate,
    Problem,
)
from watchpost.db import erasure, identities, sightings
from watchpost.db.identities import DuplicateLoginError
from watchpost.erasure import forget_person

log = logging.getLogger(__name__)
router = api_router()


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
    erased = erasure.erase_identity(conn, identity_id)
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
    photos = [
        (await upload.read(settings.dashboard_max_upload_bytes + 1), upload.filename or "upload")
        for upload in file
    ]
    accepted, rejected = await run_in_threadpool(
        screen_faces,
        photos,
        identity_id=identity_id,
        name=identity["display_name"],
        settings=settings,
        largest=largest,
        force=force,
    )
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


@router.get(
    "/identities/{identity_id}/thumbnail",
    tags=["faces"],
    response_class=Response,
    responses={**NOT_FOUND, **JPEG},
)
def identity_thumbnail(identity_id: int, conn: ConnDep) -> Response:
    """The person's first enrolment crop; 404 for an unknown person or one with no photo."""
    existing_identity(conn, identity_id)
    faces = identities.list_faces(conn, identity_id)
    image = identities.face_image(conn, faces[0]["id"]) if faces else None
    # Short: a new first photo (or its removal) shows within a minute.
    return jpeg_response(image, f"identity {identity_id} has no photo", max_age=60)
