"""Security headers on every dashboard response.

The page loads only its own script and stylesheet (no inline script, no inline style, nothing
from other hosts), so its Content-Security-Policy allows nothing else: an injected `<script>` or
`onerror=` does not run. No other site may frame it (clickjacking), browsers may not guess a
content type other than the one sent, and no Referer leaves for other sites. FastAPI's /docs and
/redoc pages load Swagger UI and ReDoc from a CDN with an inline script, so they get a policy
that allows exactly that (and can be turned off with WATCHPOST_HTTP_DOCS=false).
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
DOCS_POLICY = (
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
    "font-src https://fonts.gstatic.com",
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
    "worker-src blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=(), usb=()",
}
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")


def content_security_policy(path: str, host: str | None) -> str:
    if path in DOCS_PATHS:
        return "; ".join(DOCS_POLICY)
    # The live websocket is on this very host; spelt out, as older browsers do not count ws: and
    # wss: as 'self'.
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return "; ".join([*PAGE_POLICY, f"connect-src 'self'{sockets}"])


class SecurityHeaders:
    """ASGI middleware adding the headers above (and HSTS when served over HTTPS)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1") or None
        policy = content_security_policy(scope["path"], host)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in FIXED.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", policy)
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, with_headers)
