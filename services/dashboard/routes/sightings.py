"""Where people were seen, and strangers grouped by face (/sightings, /unknown-groups)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import HTTPException, Query, Request, Response

from services.dashboard.api import (
    ENROL_ERRORS,
    JPEG,
    NOT_FOUND,
    api_router,
    existing_identity,
    group_public,
    jpeg_response,
    screen_faces,
    sighting_public,
    target_identity,
    target_name,
)
from services.dashboard.auth import Admin, Operator, audit, throttle
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.enrolment import store_faces
from services.dashboard.schemas import (
    EnrolTarget,
    FaceSamplePublic,
    GroupMerge,
    GroupNamed,
    IdentityPublic,
    Problem,
    SightingPublic,
    UnknownGroupPublic,
)
from watchpost.db import identities, sightings

router = api_router()


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
    "/unknown-groups/{group_id}/merge",
    response_model=UnknownGroupPublic,
    tags=["sightings"],
    responses={**NOT_FOUND, 409: {"model": Problem}},
)
def merge_unknown_groups(
    group_id: int, body: GroupMerge, conn: ConnDep, who: Operator, request: Request
) -> UnknownGroupPublic:
    """One stranger seen on several tracks may have started several groups: move the sightings
    of `group_ids` into this group, and delete those groups. Only unnamed groups merge (409 for
    a named one: naming enrols faces through the enrolment checks; a merge would bypass them)."""
    try:
        moved = sightings.merge_groups(conn, group_id, body.group_ids)
    except LookupError as exc:
        conn.rollback()
        raise HTTPException(404, detail=str(exc)) from None
    except sightings.GroupNamedError as exc:
        conn.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    except ValueError as exc:  # a group merged into itself
        conn.rollback()
        raise HTTPException(422, detail=str(exc)) from None
    audit(
        conn,
        request,
        who,
        "unknown_groups_merge",
        "unknown_group",
        group_id,
        merged=body.group_ids,
        sightings=moved,
    )
    merged = sightings.get_group(conn, group_id)
    assert merged is not None  # locked and kept by the merge
    return group_public(merged)


@router.post(
    "/unknown-groups/{group_id}/name",
    status_code=201,
    response_model=GroupNamed,
    tags=["sightings", "faces"],
    responses=ENROL_ERRORS,
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
    accepted, rejected = screen_faces(
        [
            (f["face_jpeg"], f"sighting-{f['id']}.jpg")
            for f in faces[: settings.dashboard_max_files]
        ],
        identity_id=body.identity_id,
        name=target_name(body, target),
        settings=settings,
        largest=True,
        force=force,
    )
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
