"""Cameras: list, add, change, remove (capture reconciles its loops when they change)."""

from __future__ import annotations

from fastapi import HTTPException, Request, Response

from services.dashboard.api import (
    NOT_FOUND,
    api_router,
)
from services.dashboard.auth import Admin, Viewer, audit
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.schemas import (
    CameraCreate,
    CameraPublic,
    CameraUpdate,
    Problem,
)
from watchpost.auth import Principal, Role
from watchpost.db import cameras
from watchpost.settings import DashboardSettings
from watchpost.sources import SourceNotAllowed, redact

router = api_router()


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
