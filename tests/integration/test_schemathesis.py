"""Schemathesis against the dashboard's and recognition's OpenAPI schemas, over real HTTP with
real Redis, PostgreSQL and models: generated requests (valid and not) must never get a 5xx, and
every response must match the schema the service publishes. The number of cases tried is
printed (run with -s to see it); docs/reliability.md records it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import SERVICE_TOKENS
from tests.support.servers import serving
from watchpost.settings import DashboardSettings, RecognitionSettings

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,response_schema_conformance"


def schemathesis(url: str, token: str, *extra: str) -> tuple[int, str]:
    """Run the schemathesis CLI; (cases generated, output). Fails the test on any failure."""
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--no-color",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated, output[-2000:]
    return int(generated.group(1)), output


def test_dashboard_api_never_fails_and_matches_its_schema(env_settings, admin_key):
    recognition = env_settings(RecognitionSettings)
    with serving(recognition_app(recognition)) as recognition_url:
        settings = env_settings(
            DashboardSettings,
            dashboard_recognition_url=recognition_url,
            # Generated traffic is far beyond a person's: the limits would answer most of it.
            dashboard_login_per_minute=1_000_000,
            dashboard_enrol_per_minute=1_000_000,
        )
        with serving(dashboard_app(settings)) as url:
            # The live view is an endless stream (tested on its own in test_dashboard).
            cases, _ = schemathesis(url, admin_key, "--exclude-path-regex", r"live\.mjpg$")
    print(f"\nschemathesis: {cases} cases against the dashboard API")
    assert cases >= 300


def test_recognition_api_never_fails_and_matches_its_schema(env_settings, kiosk_key):
    with serving(recognition_app(env_settings(RecognitionSettings))) as url:
        # Each caller on its own routes: the dashboard's token, and a kiosk's key for /v1/verify.
        cases, _ = schemathesis(
            url, SERVICE_TOKENS["dashboard"], "--exclude-path-regex", r"^/v1/verify$"
        )
        verify_cases, _ = schemathesis(url, kiosk_key, "--include-path-regex", r"^/v1/verify$")
    print(f"\nschemathesis: {cases + verify_cases} cases against the recognition API")
    assert cases >= 30 and verify_cases >= 10
