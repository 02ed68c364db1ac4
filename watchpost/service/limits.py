"""Request body limits: every body capped, large uploads admitted per route before they are read."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadRoute:
    """A route that may take a body beyond `max_body_bytes` (photos, bursts of frames), up to
    the service's `max_upload_bytes`, once `admit` has accepted its caller. `admit` raises the
    HTTPException the caller gets instead (401, 403, 429); it may leave what it learnt in the
    request's state for the route (the dashboard keeps the principal there)."""

    method: str
    path: re.Pattern[str]
    admit: Callable[[Request], Awaitable[object]]

    def matches(self, scope: Scope) -> bool:
        return scope["method"] == self.method and self.path.fullmatch(scope["path"]) is not None


class BodyLimit:
    """ASGI middleware: a request body beyond `max_bytes` gets 413 before it is buffered or
    spooled to disk, whether it declares its length or streams it chunked. Only an upload route
    may take more, up to `upload_bytes`, and only after its caller is admitted: a stranger's big
    body is answered (401, 403, 429 or 413) without being read."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_bytes: int | None = None,
        uploads: Sequence[UploadRoute] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes or max_bytes
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"content-length")
        declared = int(header) if header is not None and header.isdigit() else None
        limit = self.max_bytes
        upload = next((u for u in self.uploads if u.matches(scope)), None)
        if upload is not None and (declared is None or declared > self.max_bytes):
            try:
                await upload.admit(Request(scope))
            except HTTPException as refused:
                await _answer(scope, receive, send, refused)
                return
            limit = self.upload_bytes
        too_large = HTTPException(413, detail=f"the request body exceeds {limit} bytes")
        if declared is not None and declared > limit:
            await _answer(scope, receive, send, too_large)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large  # FastAPI turns it into the 413 answer while parsing the body
            return message

        await self.app(scope, counted, send)


async def _answer(scope: Scope, receive: Receive, send: Send, exc: HTTPException) -> None:
    response = JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )
    await response(scope, receive, send)
