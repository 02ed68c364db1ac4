"""A recognition server the dashboard can embed photos with and check them against, and a
client of a dashboard signed in with a key: the set-up the dashboard-facing tests share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import key_headers
from tests.support.servers import serving
from watchpost.settings import DashboardSettings, RecognitionSettings


@contextmanager
def recognition_server(settings: RecognitionSettings) -> Iterator[str]:
    """A running recognition service (its URL), ready: its gallery loaded. Give it the
    dashboard's database and prefix (`env_settings(RecognitionSettings)`): the enrolment
    checks ask its gallery."""
    with serving(recognition_app(settings)) as url:
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("recognition did not become ready in 60 s")
            time.sleep(0.05)
        yield url


@contextmanager
def dashboard_client(env_settings: Any, recognition_url: str, key: str) -> Iterator[TestClient]:
    """A client of a running dashboard holding `key` (send `Authorization: ""` to call without
    one)."""
    settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
    with TestClient(dashboard_app(settings), headers=key_headers(key)) as client:
        yield client
