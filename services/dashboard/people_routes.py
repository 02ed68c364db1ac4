"""Routes the page's People view needs beyond the identities API: a face thumbnail per person
(the list shows one without fetching every person's samples)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from services.dashboard.auth import VIEWER
from services.dashboard.deps import ConnDep
from services.dashboard.schemas import Problem
from watchpost.db import identities

router = APIRouter(prefix="/api/v1", dependencies=VIEWER, tags=["faces"])


@router.get(
    "/identities/{identity_id}/thumbnail",
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
