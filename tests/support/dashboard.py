"""A recognition server the dashboard can embed photos with, and a client of a dashboard signed
in with a key: the set-up the dashboard-facing tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import SERVICE_TOKEN_SETTINGS, key_headers
from tests.support.servers import serving
from watchpost.settings import DashboardSettings, RecognitionSettings


@contextmanager
def recognition_server(redis_url: str, postgres_url: str, prefix: str) -> Iterator[str]:
    """A running recognition service (its URL). It only embeds for the dashboard, so one per
    module serves every test."""
    settings = RecognitionSettings(
        redis_url=redis_url,
        database_url=postgres_url,
        stream_prefix=prefix,
        consumer_name="test",
        **SERVICE_TOKEN_SETTINGS,
    )
    with serving(recognition_app(settings)) as url:
        yield url


@contextmanager
def dashboard_client(env_settings: Any, recognition_url: str, key: str) -> Iterator[TestClient]:
    """A client of a running dashboard holding `key` (send `Authorization: ""` to call without
    one)."""
    settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
    with TestClient(dashboard_app(settings), headers=key_headers(key)) as client:
        yield client
