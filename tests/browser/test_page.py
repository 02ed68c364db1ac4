"""The dashboard page in headless Chromium (Debian's package, driven by Playwright): enrol a
person, play a video through the pipeline, see the alert arrive live, acknowledge it.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil

import pytest

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import require_data
from tests.support.pipeline import run_pipeline
from tests.support.servers import serving
from watchpost.db import api_keys
from watchpost.settings import PROJECT_ROOT, DashboardSettings, RecognitionSettings

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # a synthetic camera for the webcam-enrolment button
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@pytest.fixture
def browser():
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        message = "Chromium is not installed (apt-get install chromium; `make test` does it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def sign_in(page, url: str, key: str) -> None:
    """The page opens on its sign-in form; an API key gets a session."""
    page.goto(url)
    page.get_by_test_id("login").wait_for(timeout=10_000)
    page.get_by_test_id("login-key").fill(key)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("connection-status").filter(has_text="live").wait_for(timeout=10_000)


def test_enrol_watch_an_alert_arrive_and_acknowledge_it(
    browser, env_settings, redis_client, pool, make_key
):
    photo = require_data("faces/train/obama/obama.jpg")
    video = require_data("video/talking_blinks_720p.mp4")
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        serving(recognition_app(env_settings(RecognitionSettings))) as recognition_url,
        serving(
            dashboard_app(
                env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
            )
        ) as url,
    ):
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, permissions=["camera"]
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Anything the Content-Security-Policy blocks (a script, a style, the websocket).
        page.on(
            "console",
            lambda message: (
                errors.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        sign_in(page, url, make_key("admin", name="Ada"))
        assert page.get_by_test_id("who").inner_text() == "Ada (admin)"

        page.get_by_test_id("nav-people").click()
        page.get_by_test_id("identity-name").fill("Barack Obama")
        page.get_by_test_id("face-file").set_input_files(str(photo))
        page.get_by_test_id("identity-submit").click()
        page.get_by_test_id("identity-list").filter(has_text="Barack Obama").filter(
            has_text="1 photo"
        ).wait_for(timeout=30_000)
        page.screenshot(path=ARTIFACTS / "01-enrolled.png", full_page=True)

        page.get_by_test_id("webcam-start").click()
        page.get_by_test_id("webcam-snap").click()
        page.get_by_test_id("webcam-count").filter(has_text="1 webcam photo").wait_for(
            timeout=10_000
        )

        page.get_by_test_id("nav-live").click()
        run_pipeline(env_settings, redis_client, pool, video)  # the speaker is not enrolled
        card = page.locator('[data-testid="alert-card"][data-kind="unknown_person"]')
        card.wait_for(timeout=15_000)
        assert "urgent" in (card.get_attribute("class") or "")
        assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
        page.screenshot(path=ARTIFACTS / "02-alert-live.png", full_page=True)

        card.get_by_test_id("alert-ack").click()
        page.get_by_test_id("alert-acknowledged").filter(has_text="acknowledged by Ada").wait_for(
            timeout=10_000
        )
        acknowledged = page.locator('[data-testid="alert-card"][data-kind="unknown_person"]')
        assert "urgent" not in (acknowledged.get_attribute("class") or "")
        page.screenshot(path=ARTIFACTS / "03-acknowledged.png", full_page=True)

        page.get_by_test_id("nav-history").click()
        page.get_by_test_id("history-ack").select_option("true")
        page.get_by_test_id("history-apply").click()
        page.get_by_test_id("history-list").locator('[data-kind="unknown_person"]').wait_for(
            timeout=10_000
        )
        page.get_by_test_id("history-ack").select_option("false")
        page.get_by_test_id("history-apply").click()
        page.wait_for_function("document.querySelectorAll('#history-list li').length === 0")
        page.screenshot(path=ARTIFACTS / "04-history.png", full_page=True)
        # The speaker is on record too: a sighting (not an alarm) of an unknown face.
        page.get_by_test_id("history-kind").select_option("sighting")
        page.get_by_test_id("history-apply").click()
        sighting = page.locator('[data-testid="sighting-card"][data-known="false"]').first
        sighting.wait_for(timeout=10_000)
        assert "Not enrolled" in sighting.inner_text()
        assert sighting.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
        page.screenshot(path=ARTIFACTS / "04b-sightings.png", full_page=True)

        page.get_by_test_id("nav-cameras").click()
        page.get_by_test_id("camera-id").fill("lobby")
        page.get_by_test_id("camera-name").fill("Lobby")
        page.get_by_test_id("camera-source").fill("rtsp://192.168.0.9:9/lobby")
        page.get_by_test_id("camera-submit").click()
        page.get_by_test_id("camera-list").filter(has_text="Lobby").wait_for(timeout=10_000)
        page.screenshot(path=ARTIFACTS / "05-cameras.png", full_page=True)
        assert errors == []


def test_the_page_reconnects_after_a_restart_and_shows_what_it_missed(
    browser, env_settings, pool, redis_client, prefix, make_key
):
    from tests.integration.test_dashboard import store_alert
    from tests.support.servers import free_port

    port = free_port()
    settings = env_settings(DashboardSettings)
    page = browser.new_context().new_page()
    with serving(dashboard_app(settings), port=port) as url:
        sign_in(page, url, make_key("viewer"))
    page.get_by_test_id("connection-status").filter(has_text="reconnecting").wait_for(
        timeout=10_000
    )
    missed = store_alert(
        pool, redis_client, prefix, "while-down"
    )  # decided while the page was cut off
    with serving(dashboard_app(settings), port=port):
        page.get_by_test_id("connection-status").filter(has_text="live").wait_for(timeout=20_000)
        page.locator(f'[data-testid="alert-card"][data-alert-id="{missed}"]').wait_for(
            timeout=10_000
        )
        page.screenshot(path=ARTIFACTS / "06-reconnected.png", full_page=True)


def test_sign_in_is_required_and_a_viewer_cannot_change_things(
    browser, env_settings, pool, redis_client, prefix, make_key
):
    from tests.integration.test_dashboard import store_alert

    store_alert(pool, redis_client, prefix, "seen")
    viewer = make_key("viewer", name="Vic")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context().new_page()
    with serving(dashboard_app(env_settings(DashboardSettings))) as url:
        page.goto(url)
        page.get_by_test_id("login").wait_for(timeout=10_000)
        assert page.get_by_test_id("alert-feed").locator("li").count() == 0  # nothing leaks
        page.get_by_test_id("login-key").fill("wp_0123456789ab_" + "x" * 40)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("error-banner").filter(has_text="sign in").wait_for(timeout=10_000)

        sign_in(page, url, viewer)
        page.locator('[data-testid="alert-card"][data-kind="unknown_person"]').wait_for(
            timeout=10_000
        )
        page.get_by_test_id("alert-ack").first.click()  # acknowledging needs an operator
        page.get_by_test_id("error-banner").filter(has_text="operator role").wait_for(
            timeout=10_000
        )
        page.screenshot(path=ARTIFACTS / "07-viewer.png", full_page=True)

        page.get_by_test_id("logout").click()
        page.get_by_test_id("login").wait_for(timeout=10_000)
        assert page.context.cookies() == []

        # A key revoked while its page is open: the page notices and asks to sign in again.
        again = make_key("viewer", name="Val")
        sign_in(page, url, again)
        with pool.connection() as conn:
            api_keys.revoke_key(conn, again.split("_")[1])
        page.get_by_test_id("login").wait_for(timeout=20_000)
