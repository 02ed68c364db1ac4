"""The page's views in headless Chromium: people (search, a person's page with photos, sightings
and alerts, erasure with a confirmation), "this is..." on an unknown alert with the gallery
checks' refusals, naming a stranger group, history filters kept in the URL, the alerts chart,
and the admin view (keys shown once and revoked, the audit log, the calibration report). Faces
are real photos embedded by the real model, through the real recognition service and
aggregator. Screenshots (desktop and a 390x844 phone) go to test-artifacts/."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.browser import test_page
from tests.browser.test_page import ARTIFACTS, sign_in
from tests.conftest import require_data
from tests.integration.test_recognition import enrol_for_calibration
from tests.integration.test_sightings import T0, run, seen
from tests.support.servers import serving
from watchpost.db import alerts, identities
from watchpost.messages import AlertKind
from watchpost.settings import DashboardSettings, RecognitionSettings

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.browser]
PHONE = {"width": 390, "height": 844}
browser = test_page.browser  # the same Chromium fixture


def watch_errors(page) -> list[str]:
    """Script errors and anything the Content-Security-Policy blocks."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return errors


def loaded(locator) -> bool:
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def until(check, timeout: float = 15.0) -> None:
    """Wait for a condition (the page's CSP refuses wait_for_function's string eval)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture
def servers(env_settings):
    with serving(recognition_app(env_settings(RecognitionSettings))) as recognition_url:
        settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
        with serving(dashboard_app(settings)) as url:
            yield url


def test_people_strangers_and_alerts_from_the_page(
    browser, servers, env_settings, redis_client, pool, make_key
):
    ARTIFACTS.mkdir(exist_ok=True)
    url = servers
    # Three unknown tracks: Obama at two cameras (one stranger group), Biden once.
    run(
        env_settings,
        redis_client,
        pool,
        [
            seen("o1", T0, camera="door", face="faces/train/obama/obama.jpg"),
            seen("o2", T0 + 60, camera="yard", face="faces/train/obama/obama2.jpg"),
            seen("b1", T0 + 90, camera="yard", face="faces/train/biden/biden.jpg"),
        ],
    )
    with pool.connection() as conn:
        identities.create_identity(conn, display_name="Kit Harington")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors = watch_errors(page)
    sign_in(page, url, make_key("admin", name="Ada"))

    # -- People: enrol, search, thumbnails ----------------------------------------------------
    page.get_by_test_id("nav-people").click()
    page.get_by_test_id("identity-name").fill("Joe Biden")
    page.get_by_test_id("face-file").set_input_files(
        str(require_data("faces/train/biden/biden.jpg"))
    )
    page.get_by_test_id("identity-submit").click()
    biden_row = page.get_by_test_id("person-row").filter(has_text="Joe Biden")
    biden_row.filter(has_text="1 photo").wait_for(timeout=30_000)
    until(lambda: loaded(biden_row.locator("img.avatar")))
    assert page.get_by_test_id("person-row").count() == 2
    page.get_by_test_id("people-search").fill("bid")
    page.get_by_test_id("people-search").press("Enter")
    page.get_by_test_id("people-count").filter(has_text="1 person matching").wait_for()
    assert page.get_by_test_id("person-row").count() == 1
    assert "q=bid" in page.url
    page.screenshot(path=ARTIFACTS / "10-people-search.png", full_page=True)

    # -- A person's page: photos added and removed, sightings, alerts ---------------------------
    biden_id = int(biden_row.get_attribute("data-identity-id"))
    run(env_settings, redis_client, pool, [seen("g1", T0 + 300, biden_id, "Joe Biden", "gate")])
    with pool.connection() as conn:
        alerts.upsert_alert(
            conn,
            kind=AlertKind.IDENTITY_MISMATCH,
            camera_id="gate",
            track_id="g1",
            captured_at=T0 + 300,
            identity_id=biden_id,
            display_name="Joe Biden",
            reason="claimed someone else",
        )
    biden_row.locator("a").focus()  # keyboard: a real link
    page.keyboard.press("Enter")
    page.get_by_test_id("person-name").filter(has_text="Joe Biden").wait_for()
    assert page.url.endswith(f"#/person/{biden_id}")
    assert page.get_by_test_id("person-face").count() == 1
    page.get_by_test_id("person-file").set_input_files(
        str(require_data("faces/train/biden/biden2.jpg"))
    )
    page.get_by_test_id("person-add").click()
    page.get_by_test_id("person-add-result").filter(has_text="1 photo added").wait_for(
        timeout=30_000
    )
    assert page.get_by_test_id("person-face").count() == 2
    sighting = page.get_by_test_id("person-sightings").get_by_test_id("sighting-card")
    assert sighting.count() == 1 and "gate" in sighting.inner_text()
    named = page.get_by_test_id("person-alerts").locator('[data-kind="identity_mismatch"]')
    assert "claimed someone else" in named.inner_text()
    page.screenshot(path=ARTIFACTS / "11-person.png", full_page=True)
    page.get_by_test_id("face-remove").last.click()
    until(lambda: page.get_by_test_id("person-face").count() == 1)

    # -- Strangers: name a group once ---------------------------------------------------------
    page.get_by_test_id("nav-strangers").click()
    obama_group = page.get_by_test_id("group-card").filter(has_text="2 sightings")
    obama_group.wait_for(timeout=10_000)
    assert "door, yard" in obama_group.inner_text()
    page.screenshot(path=ARTIFACTS / "12-strangers.png", full_page=True)
    obama_group.get_by_test_id("group-name").click()
    page.get_by_test_id("enrol-name").fill("Barack Obama")
    page.get_by_test_id("enrol-submit").click()
    page.get_by_test_id("notice").filter(has_text="Named Barack Obama: 2 faces enrolled").wait_for(
        timeout=30_000
    )
    page.get_by_test_id("group-card").filter(has_text="2 sightings").wait_for(state="detached")
    page.get_by_test_id("group-all").check()  # the named ones too, linked to their person
    page.wait_for_url(re.compile(r"#/strangers\?all=1$"))
    named_group = page.locator('[data-testid="group-card"][data-named="true"]')
    named_group.filter(has_text="2 sightings").wait_for()
    named_group.get_by_test_id("group-person").click()
    page.get_by_test_id("person-name").filter(has_text="Barack Obama").wait_for()
    assert page.get_by_test_id("person-face").count() == 2
    page.get_by_test_id("person-sightings").get_by_test_id("sighting-card").nth(1).wait_for()

    # -- "This is...": an unknown alert's face, refused until it names the right person ----------
    page.get_by_test_id("nav-live").click()
    card = page.locator('[data-testid="alert-card"][data-kind="unknown_person"]').filter(
        has_text="door"
    )
    card.get_by_test_id("alert-this-is").click()
    dialog = page.get_by_test_id("enrol-dialog")
    until(lambda: loaded(dialog.locator("img.face")))
    dialog.get_by_test_id("enrol-person").select_option(label="Joe Biden")
    dialog.get_by_test_id("enrol-submit").click()
    refusal = dialog.get_by_test_id("enrol-error")
    refusal.filter(has_text="unlike Joe Biden's").wait_for(timeout=30_000)
    assert dialog.get_by_test_id("enrol-force").is_visible()  # the outlier can be forced
    page.screenshot(path=ARTIFACTS / "13-this-is-refused.png")
    dialog.get_by_test_id("enrol-new").check()
    dialog.get_by_test_id("enrol-name").fill("Obama again")
    dialog.get_by_test_id("enrol-submit").click()
    refusal.filter(has_text="possibly the same person enrolled twice").wait_for(timeout=30_000)
    dialog.get_by_test_id("enrol-person").select_option(label="Barack Obama")
    dialog.get_by_test_id("enrol-submit").click()
    page.get_by_test_id("notice").filter(has_text="Enrolled as Barack Obama").wait_for(
        timeout=30_000
    )
    assert not dialog.is_visible()
    with pool.connection() as conn:
        rows, _ = identities.list_identities(conn, search="Obama")
    assert [(r["display_name"], r["face_count"]) for r in rows] == [("Barack Obama", 3)]

    # -- History: filters in the URL survive a reload and go with back; the chart --------------
    page.get_by_test_id("nav-history").click()
    page.get_by_test_id("history-kind").select_option("unknown_person")
    page.get_by_test_id("history-camera").fill("yard")
    page.get_by_test_id("history-apply").click()
    page.wait_for_url(re.compile(r"#/history\?kind=unknown_person&camera=yard"))
    page.reload()
    page.get_by_test_id("history-list").get_by_test_id("alert-card").first.wait_for()
    assert page.get_by_test_id("history-kind").input_value() == "unknown_person"
    assert page.get_by_test_id("history-camera").input_value() == "yard"
    shown = page.get_by_test_id("history-list").get_by_test_id("alert-card")
    with pool.connection() as conn:
        stored = alerts.list_alerts(conn, limit=100)
    at_yard = [a for a in stored if a["kind"] == "unknown_person" and a["camera_id"] == "yard"]
    assert at_yard and shown.count() == len(at_yard)
    assert all("yard" in shown.nth(i).inner_text() for i in range(shown.count()))
    # The chart draws, per kind, as many alerts as are stored (all within the last hour).
    bars = page.get_by_test_id("alert-chart").locator("rect.bar")
    drawn: dict[str, int] = {}
    for bar in bars.all():
        kind = bar.get_attribute("data-kind")
        drawn[kind] = drawn.get(kind, 0) + int(bar.get_attribute("data-count"))
    expected: dict[str, int] = {}
    for a in stored:
        expected[a["kind"]] = expected.get(a["kind"], 0) + 1
    assert drawn == expected and drawn["identity_mismatch"] == 1
    page.screenshot(path=ARTIFACTS / "14-history-chart.png", full_page=True)
    shown.first.get_by_test_id("alert-ack").click()
    page.get_by_test_id("history-list").get_by_test_id("alert-acknowledged").wait_for()
    page.go_back()
    until(lambda: page.get_by_test_id("history-camera").input_value() == "")
    everything = page.get_by_test_id("history-list").get_by_test_id("alert-card")
    until(lambda: everything.count() == len(stored))

    # -- Erasure, with a confirmation step ------------------------------------------------------
    page.goto(f"{url}/#/person/{biden_id}")
    page.get_by_test_id("person-name").filter(has_text="Joe Biden").wait_for()
    page.get_by_test_id("person-delete").click()
    page.get_by_test_id("person-confirm").filter(has_text="cannot be undone").wait_for()
    page.get_by_test_id("person-confirm-no").click()
    assert page.get_by_test_id("person-confirm").is_hidden()
    page.get_by_test_id("person-delete").click()
    page.screenshot(path=ARTIFACTS / "15-erase-confirm.png", full_page=True)
    page.get_by_test_id("person-confirm-yes").click()
    page.get_by_test_id("notice").filter(has_text="Joe Biden was erased").wait_for()
    page.wait_for_url(re.compile(r"#/people$"))
    page.get_by_test_id("person-row").filter(has_text="Kit Harington").wait_for()
    assert page.get_by_test_id("person-row").filter(has_text="Joe Biden").count() == 0

    # -- A live alert (its event does not say it has a face) gets "this is..." too -----------------
    from tests.integration.test_sightings import photo
    from watchpost.keys import Keys
    from watchpost.streams import publish

    frame, _box, _ = photo("faces/train/biden/biden2.jpg")
    with pool.connection() as conn:
        row, _ = alerts.upsert_alert(
            conn,
            kind=AlertKind.UNKNOWN_PERSON,
            camera_id="porch",
            track_id="p1",
            captured_at=T0 + 900,
            snapshot_jpeg=frame,
            face_jpeg=frame,
        )
    event = alerts.alert_from_row(row)
    page.get_by_test_id("nav-live").click()
    publish(
        redis_client,
        Keys(env_settings(DashboardSettings).stream_prefix).alerts,
        event,
    )
    live_card = page.locator(f'[data-testid="alert-card"][data-alert-id="{row["id"]}"]')
    live_card.get_by_test_id("alert-this-is").wait_for(timeout=15_000)
    assert "urgent" in (live_card.get_attribute("class") or "")

    # -- A phone-sized screen ---------------------------------------------------------------------
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    errors += watch_errors(phone)
    sign_in(phone, url, make_key("admin", name="Phone"))
    phone.locator('[data-testid="alert-card"]').first.wait_for()
    phone.screenshot(path=ARTIFACTS / "16-phone-live.png", full_page=True)
    for view in ("people", "strangers", "history"):
        phone.get_by_test_id(f"nav-{view}").click()
        phone.wait_for_timeout(500)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{view}: the page is {width} px wide"
        phone.screenshot(path=ARTIFACTS / f"17-phone-{view}.png", full_page=True)
    assert errors == []


def test_admin_manages_keys_reads_the_audit_log_and_calibrates(browser, servers, pool, make_key):
    ARTIFACTS.mkdir(exist_ok=True)
    url = servers
    enrol_for_calibration(pool)  # four people with real photos
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors = watch_errors(page)
    sign_in(page, url, make_key("admin", name="Ada"))
    page.get_by_test_id("nav-admin").click()
    page.get_by_test_id("key-name").fill("Gate guard")
    page.get_by_test_id("key-role").select_option("operator")
    page.get_by_test_id("key-create").click()
    secret = page.get_by_test_id("key-secret")
    secret.filter(has_text="wp_").wait_for()
    key = secret.inner_text().strip()
    row = page.get_by_test_id("key-row").filter(has_text="Gate guard")
    row.wait_for()
    assert (
        "operator" in row.inner_text() and key not in page.get_by_test_id("key-list").inner_text()
    )
    who = httpx.get(f"{url}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
    assert who.json()["role"] == "operator"
    page.get_by_test_id("audit-list").locator('[data-action="key_create"]').wait_for()
    page.screenshot(path=ARTIFACTS / "20-admin-key-created.png", full_page=True)
    page.get_by_test_id("key-secret-done").click()
    assert page.get_by_test_id("key-secret-box").is_hidden() and secret.inner_text() == ""

    revoke = row.get_by_test_id("key-revoke")
    revoke.click()
    assert revoke.inner_text() == "Really revoke?"  # a second press confirms
    revoke.click()
    row.wait_for(state="detached")
    page.get_by_test_id("audit-list").locator('[data-action="key_revoke"]').wait_for()
    gone = httpx.get(f"{url}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
    assert gone.status_code == 401

    page.get_by_test_id("calibration-far").fill("0.01")
    page.get_by_test_id("calibration-run").click()
    result = page.get_by_test_id("calibration-result")
    result.filter(has_text="4 people").wait_for(timeout=60_000)
    assert "suggested" in result.inner_text()
    plot = page.get_by_test_id("calibration-plot")
    until(lambda: loaded(plot), timeout=60)
    page.screenshot(path=ARTIFACTS / "21-admin-calibration.png", full_page=True)

    phone = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
    errors += watch_errors(phone)
    sign_in(phone, url, make_key("admin", name="Phone"))
    phone.get_by_test_id("nav-admin").click()
    phone.get_by_test_id("key-list").locator("tr").first.wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot(path=ARTIFACTS / "22-phone-admin.png", full_page=True)

    # Below admin there is no admin view, and its address shows the live view.
    viewer = browser.new_context().new_page()
    sign_in(viewer, url, make_key("viewer", name="Vic"))
    assert viewer.get_by_test_id("nav-admin").is_hidden()
    viewer.goto(f"{url}/#/admin")
    viewer.get_by_test_id("connection-status").filter(has_text="live").wait_for()
    assert viewer.locator("#view-admin").is_hidden() and viewer.locator("#view-live").is_visible()
    # Nor the forms that need an admin: enrolling, adding cameras.
    viewer.get_by_test_id("nav-people").click()
    viewer.get_by_test_id("people-count").filter(has_text="4 people enrolled").wait_for()
    assert viewer.get_by_test_id("identity-form").is_hidden()
    viewer.get_by_test_id("nav-cameras").click()
    assert viewer.get_by_test_id("camera-form").is_hidden()
    assert errors == []


def test_a_camera_is_tried_with_capture_s_first_frame_before_it_is_kept(
    browser, env_settings, redis_client, pool, make_key
):
    import threading

    from services.capture.supervisor import CaptureSupervisor
    from watchpost.db import cameras
    from watchpost.settings import CaptureSettings

    ARTIFACTS.mkdir(exist_ok=True)
    video = require_data("video/talking_blinks_720p.mp4")
    capture = CaptureSupervisor(
        env_settings(CaptureSettings, capture_loop=True, capture_cameras_check_seconds=0.2),
        redis_client=redis_client,
        pool=pool,
        default_source=None,
    )
    stop = threading.Event()
    thread = threading.Thread(target=capture.run, args=(stop,))
    thread.start()
    try:
        with serving(dashboard_app(env_settings(DashboardSettings))) as url:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            errors = watch_errors(page)
            sign_in(page, url, make_key("admin", name="Ada"))
            page.get_by_test_id("nav-cameras").click()

            # A file that is not there: capture's error is shown, and the camera is discarded.
            page.get_by_test_id("camera-id").fill("nowhere")
            page.get_by_test_id("camera-name").fill("Nowhere")
            page.get_by_test_id("camera-source").fill(str(video.parent / "missing.mp4"))
            page.get_by_test_id("camera-test").click()
            status = page.get_by_test_id("camera-trial-status")
            status.filter(has_text="video file not found").wait_for(timeout=30_000)
            assert page.get_by_test_id("camera-trial-image").is_hidden()
            page.screenshot(path=ARTIFACTS / "30-camera-trial-failed.png", full_page=True)
            page.get_by_test_id("camera-discard").click()
            page.get_by_test_id("camera-list").locator('[data-camera-id="nowhere"]').wait_for(
                state="detached"
            )
            with pool.connection() as conn:
                assert cameras.get_camera(conn, "nowhere") is None

            # The demo video: capture's first frame appears, and the camera is kept.
            page.get_by_test_id("camera-id").fill("demo-door")
            page.get_by_test_id("camera-name").fill("Front door")
            page.get_by_test_id("camera-source").fill(str(video))
            page.get_by_test_id("camera-test").click()
            status.filter(has_text="Capture reads it").wait_for(timeout=60_000)
            until(lambda: loaded(page.get_by_test_id("camera-trial-image")))
            page.screenshot(path=ARTIFACTS / "31-camera-trial-frame.png", full_page=True)
            page.get_by_test_id("camera-keep").click()
            assert page.get_by_test_id("camera-trial").is_hidden()
            page.get_by_test_id("nav-live").click()
            tile = page.locator('[data-testid="camera-tile"][data-camera-id="demo-door"]')
            tile.filter(has_text="online").wait_for(timeout=30_000)
            # An MJPEG stream never completes; its first frame gives the image a size.
            until(lambda: tile.locator("img").evaluate("img => img.naturalWidth > 0"), timeout=30)
            page.screenshot(path=ARTIFACTS / "32-camera-tile-live.png", full_page=True)
            assert errors == []
    finally:
        stop.set()
        thread.join(30)
