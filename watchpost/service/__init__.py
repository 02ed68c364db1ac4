"""What every service process shares, one module per concept: `logs`, `loops` (the background
loop), `limits` (request bodies), `ops` (health, readiness, metrics), `calls` (who may call),
`app` (the app, its clients and lifespan). Everything is importable from here.

Each service's `main.py` builds a FastAPI app with `create_app()`; its lifespan opens clients,
starts the service's loop in a thread, and on shutdown asks the loop to stop and waits for it
to finish the message in hand.
"""

from watchpost.service.app import Resources, SettingsT, redis_client, service_app, uvicorn_options
from watchpost.service.calls import ServiceGate, api_key_auth, service_headers
from watchpost.service.limits import BodyLimit, UploadRoute
from watchpost.service.logs import JsonFormatter, configure_logging
from watchpost.service.loops import BackgroundLoop
from watchpost.service.ops import (
    add_ops_routes,
    openapi_with_sentence_errors,
    postgres_ok,
    redis_ok,
)

__all__ = [
    "BackgroundLoop",
    "BodyLimit",
    "JsonFormatter",
    "Resources",
    "ServiceGate",
    "SettingsT",
    "UploadRoute",
    "add_ops_routes",
    "api_key_auth",
    "configure_logging",
    "openapi_with_sentence_errors",
    "postgres_ok",
    "redis_client",
    "redis_ok",
    "service_app",
    "service_headers",
    "uvicorn_options",
]
