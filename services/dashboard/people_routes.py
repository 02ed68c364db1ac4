"""Routes the page's views need beyond the API: a face thumbnail per person (the People list
shows one without fetching every person's samples) and a camera's latest frame (the still the
page shows when a camera is tried out)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from services.dashboard.auth import VIEWER
from services.dashboard.deps import ConnDep, KeysDep, RedisDep
from services.dashboard.schemas import Problem
from watchpost.db import cameras, identities
from watchpost.sources import redact

router = APIRouter(prefix="/api/v1", dependencies=VIEWER)


@router.get(
    "/identities/{identity_id}/thumbnail",
    tags=["faces"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": Problem}},
)
def identity_thumbnail(identity_id: int, conn: ConnDep) -> Response:
    """The person's first enrolment crop; 404 for an unknown person or one with no photo."""
    if identities.get_identity(conn, identity_id) is None:
        raise HTTPException(404, detail=f"identity {identity_id} not found")
    faces = identities.list_faces(conn, identity_id)
    image = identities.face_image(conn, faces[0]["id"]) if faces else None
    if image is None:
        raise HTTPException(404, detail=f"identity {identity_id} has no photo")
    # Short: a new first photo (or its removal) shows within a minute.
    return Response(
        image, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"}
    )


@router.get(
    "/cameras/{camera_id}/snapshot.jpg",
    tags=["cameras"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": Problem}},
)
def camera_snapshot(
    camera_id: str, conn: ConnDep, redis_client: RedisDep, keys: KeysDep
) -> Response:
    """The latest frame capture drew for the camera's live view (boxes and names on it); 404
    for an unknown camera, or with capture's status and last error while there is no frame."""
    camera = cameras.get_camera(conn, camera_id)
    if camera is None:
        raise HTTPException(404, detail=f"camera {camera_id!r} not found")
    jpeg = redis_client.get(keys.live_frame(camera_id))
    if not jpeg:
        error = f"; {redact(camera['last_error'])}" if camera["last_error"] else ""
        raise HTTPException(
            404, detail=f"no frame from camera {camera_id!r} yet (status {camera['status']}{error})"
        )
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
