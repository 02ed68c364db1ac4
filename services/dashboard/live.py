"""What is live: the websocket `/api/v1/alerts/ws` (new alerts as they are decided and, after a
reconnect, the ones missed: `?after=<last alert id seen>`, replayed from Postgres), and an MJPEG
live view per camera.

Both stay open for hours, so being let in once is not enough: every
`dashboard_live_recheck_seconds` each asks whether its sign-in still stands (session not ended or
expired, key not revoked); a websocket that lost it is closed with 1008, a live view ends."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.dashboard.auth import VIEWER, AuthState, authenticate, same_origin
from watchpost.auth import RateLimited, Role
from watchpost.db import alerts, cameras
from watchpost.keys import Keys

router = APIRouter(prefix="/api/v1")  # the websocket checks its caller itself


def _replay(pool, after: int, limit: int) -> list[dict]:
    with pool.connection() as conn:
        return alerts.list_alerts(conn, after_id=after, limit=limit)


@router.websocket("/alerts/ws")
async def alerts_ws(websocket: WebSocket, after: int | None = Query(None, ge=0)) -> None:
    resources = websocket.app.state.resources
    broadcaster = websocket.app.state.broadcaster
    # Same callers as the REST API (session cookie or API key); refused before the upgrade.
    if not same_origin(websocket, resources.settings.dashboard_cors_origins):
        await websocket.close(code=1008, reason="origin not allowed")
        return
    auth: AuthState = websocket.app.state.auth
    try:
        principal = await run_in_threadpool(auth.identify, websocket)
    except RateLimited:
        principal = None
    if principal is None or not principal.may(Role.viewer):  # kiosk keys included
        await websocket.close(code=1008, reason="sign in or send an API key")
        return
    # Subscribe before replaying, so nothing decided during the replay falls in between.
    subscriber = broadcaster.subscribe(asyncio.get_running_loop())
    if subscriber is None:
        await websocket.close(code=1013, reason="too many clients")
        return
    await websocket.accept()
    last_sent = after or 0
    try:
        if after is not None:
            rows = await run_in_threadpool(
                _replay, resources.pool, after, resources.settings.dashboard_replay_limit
            )
            for row in rows:
                await websocket.send_text(
                    _frame(alerts.alert_from_row(row).model_dump(mode="json"), replay=True)
                )
                last_sent = row["id"]
        receiver = asyncio.create_task(_drain_client(websocket))
        recheck = resources.settings.dashboard_live_recheck_seconds
        next_check = time.monotonic() + recheck
        getter: asyncio.Task | None = None
        while True:
            getter = getter or asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver},
                timeout=max(0.0, next_check - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if receiver in done:
                getter.cancel()
                return
            if getter not in done:  # time to ask whether the sign-in still stands
                next_check = time.monotonic() + recheck
                if not await run_in_threadpool(auth.still_signed_in, websocket, principal):
                    getter.cancel()
                    receiver.cancel()
                    await websocket.close(code=1008, reason="signed out, expired or revoked")
                    return
                continue
            event = getter.result()
            getter = None
            if event is None:
                await websocket.close(code=1013, reason="client too slow; reconnect with ?after=")
                return
            if event.alert_id <= last_sent:
                continue
            await websocket.send_text(_frame(event.model_dump(mode="json"), replay=False))
            last_sent = event.alert_id
    except WebSocketDisconnect:
        pass
    finally:
        broadcaster.unsubscribe(subscriber)


def _frame(alert: dict, *, replay: bool) -> str:
    return json.dumps({"type": "alert", "replay": replay, "alert": alert})


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        return


@router.get(
    "/cameras/{camera_id}/live.mjpg",
    tags=["cameras"],
    responses={200: {"content": {"multipart/x-mixed-replace": {}}}, 404: {}},
    dependencies=VIEWER,
)
async def live_view(camera_id: str, request: Request) -> StreamingResponse:
    """The camera's latest frames as MJPEG (about 10 per second), with face boxes, names and
    liveness drawn by capture; ends when the client goes away."""
    resources = request.app.state.resources
    auth: AuthState = request.app.state.auth
    principal = await authenticate(request)
    keys = Keys(resources.settings.stream_prefix)
    if not await run_in_threadpool(_camera_exists, resources.pool, camera_id):
        raise HTTPException(404, detail=f"camera {camera_id!r} not found")
    recheck = resources.settings.dashboard_live_recheck_seconds

    async def frames():
        last = None
        next_check = time.monotonic() + recheck
        while not await request.is_disconnected():
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + recheck
                if not await run_in_threadpool(auth.still_signed_in, request, principal):
                    return  # the stream ends; the page asks for a sign-in again
            jpeg = await run_in_threadpool(resources.redis.get, keys.live_frame(camera_id))
            if jpeg and jpeg != last:
                last = jpeg
                yield (
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
            await asyncio.sleep(0.1)

    return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame")


def _camera_exists(pool, camera_id: str) -> bool:
    with pool.connection() as conn:
        return cameras.get_camera(conn, camera_id) is not None
