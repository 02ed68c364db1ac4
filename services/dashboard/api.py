"""What the dashboard's routers share: OpenAPI answer shapes, turning rows into public models,
JPEG answers, and the checks every enrolment route runs, `screen_faces`
(services/dashboard/routes/ holds the routes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from services.dashboard.auth import VIEWER
from services.dashboard.enrolment import (
    CheckedFace,
    EnrolmentError,
    FaceRules,
    RecognitionUnavailable,
    check_face,
    gallery_check,
)
from services.dashboard.schemas import (
    AlertEnrol,
    FaceRejection,
    Problem,
    SightingPublic,
    UnknownGroupPublic,
)
from watchpost.db import Conn, Row, identities
from watchpost.db.identities import DuplicateLoginError
from watchpost.service import service_headers
from watchpost.settings import DashboardSettings


def api_router() -> APIRouter:
    """A router of /api/v1: every route needs at least a viewer (write routes ask for more)."""
    return APIRouter(prefix="/api/v1", dependencies=VIEWER)


# OpenAPI answers added to a route's own (FastAPI's `responses`).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Problem}}
JPEG: Responses = {200: {"content": {"image/jpeg": {}}}}
# Enrolling someone else's faces: the source is missing, a login is taken, a face is refused, or
# recognition is unavailable.
ENROL_ERRORS: Responses = {
    **NOT_FOUND,
    409: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


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


def jpeg_response(data: bytes | None, missing: str, *, max_age: int = 3600) -> Response:
    """The JPEG, cached privately for `max_age` seconds; 404 saying `missing` when there is none."""
    if data is None:
        raise HTTPException(404, detail=missing)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": f"private, max-age={max_age}"}
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


def target_name(body: AlertEnrol, target: Row | None) -> str:
    """The name a request's refusals use: the identity it names, or the new person's."""
    return str(target["display_name"]) if target else str(body.display_name)


def screen_faces(
    photos: Iterable[tuple[bytes, str]],
    *,
    identity_id: int | None,
    name: str,
    settings: DashboardSettings,
    largest: bool,
    force: bool = False,
) -> tuple[list[CheckedFace], list[FaceRejection]]:
    """Every photo (bytes, file name) through the enrolment checks for one identity (None: a
    new person, named `name`): one usable face, like the person's own photos, unlike anyone
    else's (recognition's gallery answers). The accepted faces and the rejected files with
    their reasons; recognition away or not ready is a 503 with the reason."""
    face_rules = rules(settings, largest=largest, force=force)
    headers = service_headers(settings)
    url = settings.dashboard_recognition_url
    against_gallery = gallery_check(
        identity_id, name, face_rules, recognition_url=url, headers=headers
    )
    accepted: list[CheckedFace] = []
    rejected: list[FaceRejection] = []
    for data, filename in photos:
        try:
            face = check_face(
                data, filename, recognition_url=url, rules=face_rules, headers=headers
            )
            against_gallery(face)
            accepted.append(face)
        except EnrolmentError as exc:
            rejected.append(FaceRejection(filename=filename, reason=str(exc)))
        except RecognitionUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from None
    return accepted, rejected


# -- identities -----------------------------------------------------------------------------
