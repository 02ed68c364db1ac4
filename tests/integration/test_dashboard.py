"""Dashboard REST API and websocket, with the real recognition service behind it over HTTP."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.dashboard.main import create_app as dashboard_app
from tests.conftest import key_headers, require_data
from tests.support.dashboard import dashboard_client, recognition_server
from tests.support.servers import free_port, serving
from watchpost.db import alerts
from watchpost.images import encode_jpeg
from watchpost.keys import Keys
from watchpost.messages import AlertKind
from watchpost.settings import DashboardSettings, RecognitionSettings
from watchpost.streams import publish


@pytest.fixture
def recognition_url(env_settings):
    """Recognition on this test's database and prefix: it embeds, and its gallery answers the
    enrolment checks."""
    with recognition_server(env_settings(RecognitionSettings)) as url:
        yield url


@pytest.fixture
def client(env_settings, recognition_url, admin_key):
    """A client of a running dashboard, holding an admin key."""
    with dashboard_client(env_settings, recognition_url, admin_key) as client:
        yield client


def person(client, name="Barack Obama", login=None) -> dict:
    response = client.post("/api/v1/identities", json={"display_name": name, "login_name": login})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client, identity_id, data: bytes, name="face.jpg"):
    return client.post(f"/api/v1/identities/{identity_id}/faces", files={"file": (name, data)})


@pytest.mark.data
def test_enrol_a_person_from_a_photo(client, redis_client, prefix):
    photo = require_data("faces/train/obama/obama.jpg")
    obama = person(client, login="obama")
    response = upload(client, obama["id"], photo.read_bytes(), "obama.jpg")
    assert response.status_code == 201, response.text
    (face,) = response.json()["accepted"]
    assert len(face["box"]) == 4 and response.json()["rejected"] == []
    assert client.get(f"/api/v1/identities/{obama['id']}").json()["face_count"] == 1
    assert int(redis_client.get(Keys(prefix).gallery_version)) == 1  # recognition reloads
    page = client.get("/api/v1/identities").json()
    assert [p["display_name"] for p in page["items"]] == ["Barack Obama"] and page["total"] == 1
    crop = client.get(f"/api/v1/faces/{face['id']}/image")
    assert crop.headers["content-type"] == "image/jpeg" and crop.content[:2] == b"\xff\xd8"
    assert [f["id"] for f in client.get(f"/api/v1/identities/{obama['id']}/faces").json()] == [
        face["id"]
    ]


@pytest.mark.data
@pytest.mark.parametrize(
    ("photo", "reason"),
    [
        ("faces/test/obama_and_biden.jpg", "3 faces found; send a photo of one person"),
        ("faces/bbt/group/bbt1.jpg", "faces found; send a photo of one person"),
    ],
)
def test_a_photo_of_several_people_is_refused(client, photo, reason):
    data = require_data(photo).read_bytes()
    response = upload(client, person(client)["id"], data, "group.jpg")
    assert response.status_code == 422 and reason in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode_jpeg(np.full((300, 300, 3), 120, np.uint8)), "no face found"),
        (b"%PDF-1.4 not an image", "not an image"),
        (b"", "empty"),
    ],
)
def test_unusable_photos_get_422_and_store_nothing(client, data, reason):
    identity = person(client)
    response = upload(client, identity["id"], data, "bad.jpg")
    assert response.status_code == 422 and reason in response.json()["detail"]
    assert response.json()["detail"].startswith("bad.jpg: ")
    assert response.json()["rejected"][0]["filename"] == "bad.jpg"
    assert client.get(f"/api/v1/identities/{identity['id']}").json()["face_count"] == 0


def test_oversize_upload_is_refused(env_settings, recognition_url, admin_key):
    settings = env_settings(
        DashboardSettings,
        dashboard_recognition_url=recognition_url,
        dashboard_max_upload_bytes=2048,
    )
    with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(
            buffer, format="PNG"
        )
        response = upload(client, person(client)["id"], buffer.getvalue())
    assert response.status_code == 422 and "limit is 2048" in response.json()["detail"]


def test_recognition_down_is_a_503_not_a_crash(env_settings, admin_key):
    photo = encode_jpeg(np.full((100, 100, 3), 1, np.uint8))
    settings = env_settings(
        DashboardSettings, dashboard_recognition_url=f"http://127.0.0.1:{free_port()}"
    )
    with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
        response = upload(client, person(client)["id"], photo)
        assert response.status_code == 503 and "unreachable" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.data
def test_recognition_not_ready_is_a_503_with_the_reason(env_settings, admin_key, monkeypatch):
    """The enrolment checks ask recognition's gallery; while it is still loading, enrolment
    answers 503 saying so and stores nothing, and goes through once it is loaded."""
    import threading

    from services.recognition import stream
    from services.recognition.main import create_app as recognition_app

    release = threading.Event()
    read = stream.identities.load_gallery_binary

    def slow_read(conn, **kwargs):
        release.wait(60)
        return read(conn, **kwargs)

    monkeypatch.setattr(stream.identities, "load_gallery_binary", slow_read)
    photo = (require_data("faces/train") / "obama/obama.jpg").read_bytes()
    recognition = recognition_app(env_settings(RecognitionSettings))
    try:
        with serving(recognition) as url, dashboard_client(env_settings, url, admin_key) as client:
            assert httpx.get(f"{url}/readyz").status_code == 503
            obama = person(client)
            response = upload(client, obama["id"], photo)
            assert response.status_code == 503, response.text
            detail = response.json()["detail"]
            assert "not ready" in detail and "still loading" in detail
            assert client.get(f"/api/v1/identities/{obama['id']}").json()["face_count"] == 0
            release.set()
            while httpx.get(f"{url}/readyz").status_code != 200:
                time.sleep(0.05)
            assert upload(client, obama["id"], photo).status_code == 201
    finally:
        release.set()


def test_identity_errors(client):
    person(client, login="ann")
    duplicate = client.post(
        "/api/v1/identities", json={"display_name": "Ann 2", "login_name": "ann"}
    )
    assert duplicate.status_code == 409 and "already taken" in duplicate.json()["detail"]
    assert client.post("/api/v1/identities", json={"display_name": ""}).status_code == 422
    assert client.post("/api/v1/identities", json={"name": "x"}).status_code == 422
    assert client.get("/api/v1/identities/999999").status_code == 404
    assert client.delete("/api/v1/identities/999999").status_code == 404
    assert upload(client, 999999, b"x").status_code == 404
    assert client.get("/api/v1/identities/not-a-number").status_code == 422


@pytest.mark.data
def test_deleting_an_identity_erases_its_faces(client, pool, redis_client, prefix):
    obama = person(client)
    assert (
        upload(
            client, obama["id"], require_data("faces/train/obama/obama.jpg").read_bytes()
        ).status_code
        == 201
    )
    assert client.delete(f"/api/v1/identities/{obama['id']}").status_code == 204
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM face_samples").fetchone()["n"] == 0
    assert int(redis_client.get(Keys(prefix).gallery_version)) == 2
    assert client.get(f"/api/v1/identities/{obama['id']}").status_code == 404


def store_alert(pool, redis_client, prefix, track: str) -> int:
    with pool.connection() as conn:
        row, _ = alerts.upsert_alert(
            conn,
            kind=AlertKind.UNKNOWN_PERSON,
            camera_id="door",
            track_id=track,
            captured_at=1_700_000_000.0,
            snapshot_jpeg=b"\xff\xd8snap",
        )
    publish(redis_client, Keys(prefix).alerts, alerts.alert_from_row(row))
    return row["id"]


def test_alerts_api(client, pool, redis_client, prefix):
    first = store_alert(pool, redis_client, prefix, "t1")
    second = store_alert(pool, redis_client, prefix, "t2")
    listed = client.get("/api/v1/alerts").json()
    assert [a["id"] for a in listed] == [second, first]
    assert listed[0]["snapshot_url"] == f"/api/v1/alerts/{second}/snapshot"
    assert [a["id"] for a in client.get(f"/api/v1/alerts?before_id={second}").json()] == [first]
    assert client.get("/api/v1/alerts?kind=spoof_attempt").json() == []
    assert client.get("/api/v1/alerts?kind=burglary").status_code == 422
    snapshot = client.get(f"/api/v1/alerts/{first}/snapshot")
    assert snapshot.headers["content-type"] == "image/jpeg" and snapshot.content == b"\xff\xd8snap"
    assert client.get("/api/v1/alerts/999999").status_code == 404
    assert client.get("/api/v1/alerts/999999/snapshot").status_code == 404


def test_websocket_pushes_new_alerts_and_replays_missed_ones(client, pool, redis_client, prefix):
    missed = store_alert(pool, redis_client, prefix, "before")
    with client.websocket_connect(f"/api/v1/alerts/ws?after={missed - 1}") as ws:
        replayed = ws.receive_json()
        assert replayed["replay"] and replayed["alert"]["id"] == missed
        live = store_alert(pool, redis_client, prefix, "after")
        message = ws.receive_json()
        assert not message["replay"] and message["alert"]["id"] == live
        assert message["alert"]["kind"] == "unknown_person"
        assert message["alert"]["snapshot_url"] == f"/api/v1/alerts/{live}/snapshot"
    # One alert shape: live, replayed and the REST answer are the same object (ISO times).
    for frame, alert_id in ((message, live), (replayed, missed)):
        rest = client.get(f"/api/v1/alerts/{alert_id}").json()
        assert frame["alert"] == rest
        assert isinstance(rest["created_at"], str) and "face_url" in rest


def test_websocket_refuses_clients_beyond_the_limit(env_settings, recognition_url, admin_key):
    from starlette.websockets import WebSocketDisconnect

    settings = env_settings(
        DashboardSettings, dashboard_recognition_url=recognition_url, dashboard_max_websockets=1
    )
    with (
        TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client,
        client.websocket_connect("/api/v1/alerts/ws"),
    ):
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/api/v1/alerts/ws") as ws,
        ):
            ws.receive_json()
        assert refused.value.code == 1013


def test_ops_endpoints(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready == {"ready": True, "checks": {"redis": True, "postgres": True}}
    assert "watchpost_dashboard_websocket_clients" in client.get("/metrics").text
    assert client.get("/").status_code == 200


def resized_jpeg(path, width: int, blur: float = 0.0) -> bytes:
    from PIL import ImageFilter

    with Image.open(path) as opened:
        image = opened.convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)))
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()


@pytest.mark.data
def test_several_photos_at_once_keep_the_good_and_name_the_bad(client):
    obama = require_data("faces/train/obama")
    identity = person(client)
    files = [
        ("file", ("obama.jpg", (obama / "obama.jpg").read_bytes())),
        ("file", ("blurred.jpg", resized_jpeg(obama / "obama2.jpg", 600, blur=6))),
        ("file", ("tiny.jpg", resized_jpeg(obama / "obama2.jpg", 120))),
        ("file", ("obama2.jpg", (obama / "obama2.jpg").read_bytes())),
    ]
    response = client.post(f"/api/v1/identities/{identity['id']}/faces", files=files)
    assert response.status_code == 422
    body = response.json()
    assert len(body["accepted"]) == 2
    reasons = {r["filename"]: r["reason"] for r in body["rejected"]}
    assert "too blurry" in reasons["blurred.jpg"]
    assert "px wide; at least 80 px needed" in reasons["tiny.jpg"]
    assert client.get(f"/api/v1/identities/{identity['id']}").json()["face_count"] == 2


@pytest.mark.data
def test_largest_face_by_explicit_choice(client):
    photo = require_data("faces/test/obama_and_biden.jpg").read_bytes()
    identity = person(client)
    response = client.post(
        f"/api/v1/identities/{identity['id']}/faces?largest=true",
        files={"file": ("two.jpg", photo)},
    )
    assert response.status_code == 201, response.text


@pytest.mark.data
def test_faces_can_be_deleted_one_by_one(client, redis_client, prefix):
    identity = person(client)
    face = upload(client, identity["id"], require_data("faces/train/obama/obama.jpg").read_bytes())
    face_id = face.json()["accepted"][0]["id"]
    assert client.delete(f"/api/v1/faces/{face_id}").status_code == 204
    assert client.get(f"/api/v1/identities/{identity['id']}").json()["face_count"] == 0
    assert client.delete(f"/api/v1/faces/{face_id}").status_code == 404
    assert client.get(f"/api/v1/faces/{face_id}/image").status_code == 404
    assert int(redis_client.get(Keys(prefix).gallery_version)) == 2


def test_update_and_search_identities(client):
    ann = person(client, "Ann Smith", login="ann")
    person(client, "Bob Jones", login="bob")
    person(client, "100%_real", login=None)
    changed = client.patch(
        f"/api/v1/identities/{ann['id']}",
        json={"display_name": "Ann Smythe", "metadata": {"badge": 7}},
    )
    assert changed.status_code == 200
    assert changed.json()["display_name"] == "Ann Smythe" and changed.json()["login_name"] == "ann"
    assert changed.json()["metadata"] == {"badge": 7}
    assert (
        client.patch(f"/api/v1/identities/{ann['id']}", json={"login_name": "bob"}).status_code
        == 409
    )
    assert (
        client.patch(f"/api/v1/identities/{ann['id']}", json={"display_name": None}).status_code
        == 422
    )
    assert client.patch("/api/v1/identities/999999", json={"display_name": "x"}).status_code == 404
    assert (
        client.patch(f"/api/v1/identities/{ann['id']}", json={"colour": "red"}).status_code == 422
    )
    cleared = client.patch(f"/api/v1/identities/{ann['id']}", json={"login_name": None})
    assert cleared.json()["login_name"] is None

    def names(query: str) -> list[str]:
        return [
            i["display_name"] for i in client.get(f"/api/v1/identities?{query}").json()["items"]
        ]

    assert names("q=smy") == ["Ann Smythe"]
    assert names("q=BOB") == ["Bob Jones"]  # login or display name, any case
    assert names("q=%25_") == ["100%_real"]  # LIKE metacharacters are literal
    page = client.get("/api/v1/identities?limit=2&offset=2").json()
    assert page["total"] == 3 and [i["display_name"] for i in page["items"]] == ["100%_real"]


@pytest.mark.data
def test_enrol_the_unknown_person_of_an_alert(client, pool):
    photo = require_data("faces/train/obama/obama.jpg")
    from tests.support.frames import load_rgb
    from watchpost.images import crop
    from watchpost.vision.faces import detect_faces

    rgb = load_rgb(photo)
    face = encode_jpeg(crop(rgb, detect_faces(rgb)[0], margin=0.5))
    with pool.connection() as conn:
        with_face, _ = alerts.upsert_alert(
            conn,
            kind=AlertKind.UNKNOWN_PERSON,
            camera_id="door",
            track_id="u1",
            captured_at=1.0,
            snapshot_jpeg=b"s",
            face_jpeg=face,
        )
        without, _ = alerts.upsert_alert(
            conn, kind=AlertKind.UNKNOWN_PERSON, camera_id="door", track_id="u2", captured_at=1.0
        )
    assert (
        client.get(f"/api/v1/alerts/{with_face['id']}").json()["face_url"]
        == f"/api/v1/alerts/{with_face['id']}/face"
    )
    created = client.post(
        f"/api/v1/alerts/{with_face['id']}/enrol",
        json={"display_name": "New Colleague", "login_name": "newbie"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["identity"]["face_count"] == 1
    again = client.post(
        f"/api/v1/alerts/{with_face['id']}/enrol",
        json={"identity_id": created.json()["identity"]["id"]},
    )
    assert again.status_code == 201 and again.json()["identity"]["face_count"] == 2
    assert (
        client.post(f"/api/v1/alerts/{without['id']}/enrol", json={"display_name": "x"}).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/alerts/{with_face['id']}/enrol", json={"identity_id": 999999}
        ).status_code
        == 404
    )
    both = client.post(
        f"/api/v1/alerts/{with_face['id']}/enrol", json={"identity_id": 1, "display_name": "x"}
    )
    assert both.status_code == 422
    duplicate = client.post(
        f"/api/v1/alerts/{with_face['id']}/enrol",
        json={"display_name": "Other", "login_name": "other"},
    )
    assert duplicate.status_code == 422 and "enrolled twice" in duplicate.json()["detail"]
    taken = client.post(
        f"/api/v1/alerts/{with_face['id']}/enrol?force=true",
        json={"display_name": "Other", "login_name": "newbie"},
    )
    assert taken.status_code == 409


@pytest.mark.data
def test_bulk_enrolment_from_a_folder(env_settings, recognition_url, tmp_path, admin_key):
    import os
    import subprocess
    import sys

    from watchpost.settings import PROJECT_ROOT

    faces = require_data("faces")
    layout = {
        "Barack Obama": [faces / "train/obama/obama.jpg", faces / "train/obama/obama2.jpg"],
        "Joe Biden": [faces / "train/biden/biden.jpg"],
        "Crowd": [faces / "test/obama_and_biden.jpg"],
    }
    for name, photos in layout.items():
        (tmp_path / name).mkdir()
        for photo in photos:
            (tmp_path / name / photo.name).symlink_to(photo)
    (tmp_path / "Joe Biden" / "notes.jpg").write_text("not a photo")
    (tmp_path / "Joe Biden" / "readme.txt").write_text("ignored: not an image name")
    settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
    with serving(dashboard_app(settings)) as url:
        admin = key_headers(admin_key)
        httpx.post(f"{url}/api/v1/identities", json={"display_name": "Joe Biden"}, headers=admin)
        result = subprocess.run(
            [sys.executable, "-m", "watchpost.cli", "enroll", str(tmp_path), "--url", url],
            env=dict(os.environ, WATCHPOST_API_KEY=admin_key),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        page = httpx.get(f"{url}/api/v1/identities", headers=admin).json()
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "3 people (2 new), 3 photos enrolled, 2 rejected" in out
    assert "Crowd/obama_and_biden.jpg" in out and "3 faces found" in out
    assert "Joe Biden/notes.jpg" in out and "not an image" in out
    counts = {i["display_name"]: i["face_count"] for i in page["items"]}
    assert counts == {"Joe Biden": 1, "Barack Obama": 2, "Crowd": 0}  # Joe Biden was not duplicated


def test_acknowledge_filter_and_count_alerts(client, pool, redis_client, prefix, make_key):
    first = store_alert(pool, redis_client, prefix, "a1")
    second = store_alert(pool, redis_client, prefix, "a2")
    guard = key_headers(make_key("operator", name="guard on duty"))
    acked = client.post(f"/api/v1/alerts/{first}/ack", json={"note": "let in"}, headers=guard)
    assert acked.status_code == 200
    # Acknowledged in the caller's name, not a name the caller types.
    assert acked.json()["acknowledged_by"].startswith("guard on duty (")
    assert acked.json()["acknowledged_at"]
    again = client.post(f"/api/v1/alerts/{first}/ack", json={}).json()
    assert again["acknowledged_by"].startswith("guard on duty (")  # the first one stands
    assert client.post("/api/v1/alerts/999999/ack", json={}).status_code == 404
    assert client.post(f"/api/v1/alerts/{first}/ack", json={"by": "x"}).status_code == 422

    def ids(query: str) -> list[int]:
        return [a["id"] for a in client.get(f"/api/v1/alerts?{query}").json()]

    assert ids("acknowledged=false") == [second]
    assert ids("acknowledged=true") == [first]
    assert ids("since=2000-01-01T00:00:00Z") == [second, first]
    assert ids("until=2000-01-01T00:00:00Z") == []
    assert ids("identity_id=1") == []
    assert client.get("/api/v1/alerts?since=yesterday").status_code == 422
    counts = client.get("/api/v1/alerts/stats").json()
    assert [(c["kind"], c["count"]) for c in counts] == [("unknown_person", 2)]


def legacy_post(**overrides) -> dict:
    import base64

    jpeg = encode_jpeg(np.full((120, 160, 3), 77, np.uint8))
    body = {
        "login_name": "ada",
        "time": "2026-11-24T08:30:00Z",
        "type": "unknown",
        "image": base64.b64encode(jpeg).decode(),
    }
    body.update(overrides)
    return body


def test_legacy_clients_post_alerts_that_reach_the_websocket(client):
    with client.websocket_connect("/api/v1/alerts/ws") as ws:
        response = client.post("/dashboard", json=legacy_post())
        assert response.status_code == 201, response.text
        alert = response.json()
        assert (alert["kind"], alert["camera_id"], alert["claimed_login"]) == (
            "unknown_person",
            "legacy",
            "ada",
        )
        assert ws.receive_json()["alert"]["id"] == alert["id"]
    snapshot = client.get(alert["snapshot_url"])
    assert snapshot.content[:2] == b"\xff\xd8"
    retried = client.post("/dashboard", json=legacy_post())  # a client retrying the same post
    assert retried.status_code == 201 and retried.json()["id"] == alert["id"]
    epoch = client.post("/dashboard", json=legacy_post(time=1_795_500_000, type="spoof"))
    assert epoch.status_code == 201 and epoch.json()["kind"] == "spoof_attempt"


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"image": "not base64 at all!"}, 422, "not valid base64"),
        ({"image": "aGVsbG8gd29ybGQ="}, 422, "not a JPEG"),
        ({"image": "/9j/AAAA"}, 422, "image:"),  # JPEG magic, then garbage
        ({"type": "burglary"}, 422, "unknown type"),
        ({"time": "soon"}, 422, "time"),
        ({"login_name": ""}, 422, "login_name"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_malformed_legacy_posts_are_refused_with_a_reason(client, overrides, status, reason):
    response = client.post("/dashboard", json=legacy_post(**overrides))
    assert response.status_code == status
    assert reason in str(response.json()["detail"])
    assert client.get("/api/v1/alerts").json() == []


def test_legacy_post_missing_fields(client):
    body = legacy_post()
    del body["image"]
    response = client.post("/dashboard", json=body)
    assert response.status_code == 422 and "image" in str(response.json()["detail"])


def test_cameras_can_be_added_changed_and_removed(client, redis_client, prefix):
    version = lambda: int(redis_client.get(Keys(prefix).cameras_version) or 0)  # noqa: E731
    created = client.post(
        "/api/v1/cameras",
        json={"id": "door-2", "name": "Side door", "source": "rtsp://192.168.1.20:8554/side"},
    )
    assert created.status_code == 201 and created.json()["enabled"] and version() == 1
    assert (
        client.post(
            "/api/v1/cameras", json={"id": "door-2", "name": "x", "source": "rtsp://10.0.0.9/"}
        ).status_code
        == 409
    )
    bad = client.post("/api/v1/cameras", json={"id": "door 3", "name": "x", "source": "0"})
    assert bad.status_code == 422
    ftp = client.post(
        "/api/v1/cameras", json={"id": "door-3", "name": "x", "source": "ftp://cam/x"}
    )
    assert ftp.status_code == 422 and "rtsp://" in str(ftp.json()["detail"])
    disabled = client.patch("/api/v1/cameras/door-2", json={"enabled": False, "name": "Side"})
    assert disabled.status_code == 200 and not disabled.json()["enabled"] and version() == 2
    assert client.patch("/api/v1/cameras/nope", json={"enabled": False}).status_code == 404
    assert client.get("/api/v1/cameras/door-2").json()["name"] == "Side"
    assert client.delete("/api/v1/cameras/door-2").status_code == 204
    assert client.get("/api/v1/cameras/door-2").status_code == 404
    assert client.delete("/api/v1/cameras/door-2").status_code == 404


def test_live_view_streams_the_latest_frame_as_mjpeg(client, redis_client, prefix):
    client.post(
        "/api/v1/cameras",
        json={"id": "door-4", "name": "Lobby", "source": "rtsp://10.0.0.4/", "enabled": False},
    )
    jpeg = encode_jpeg(np.full((48, 64, 3), 30, np.uint8))
    redis_client.set(Keys(prefix).live_frame("door-4"), jpeg, ex=30)
    with client.stream("GET", "/api/v1/cameras/door-4/live.mjpg") as response:
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if jpeg in received:
                break
    assert received.startswith(b"--frame\r\nContent-Type: image/jpeg")
    assert client.get("/api/v1/cameras/unknown/live.mjpg").status_code == 404


def test_a_write_is_committed_before_its_answer_is_sent(env_settings, admin_key, pool):
    """A client that creates a person and uploads their photo at once (`watchpost enroll`) must
    find the person: the answer may only leave once the row is committed. Checked at the moment
    the answer's last byte is handed to the server, from another connection."""
    app = dashboard_app(env_settings(DashboardSettings))
    seen_when_answered: list[int] = []

    async def observed(scope, receive, send):
        async def spy(message):
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with pool.connection() as conn:
                    count = conn.execute("SELECT count(*) AS n FROM identities").fetchone()["n"]
                seen_when_answered.append(count)
            await send(message)

        await app(scope, receive, spy if scope["type"] == "http" else send)

    with TestClient(observed, headers=key_headers(admin_key)) as client:
        created = client.post("/api/v1/identities", json={"display_name": "Ada"})
    assert created.status_code == 201
    assert seen_when_answered == [1]


@pytest.mark.data
def test_enrolment_refuses_outliers_and_possible_duplicates_unless_forced(client):
    faces = require_data("faces/train")
    obama, biden = person(client), person(client, "Joe Biden")
    assert upload(client, obama["id"], (faces / "obama/obama.jpg").read_bytes()).status_code == 201
    assert upload(client, biden["id"], (faces / "biden/biden.jpg").read_bytes()).status_code == 201
    # Biden's face offered as Obama's: unlike Obama's photo, and too like Biden's.
    outlier = upload(client, obama["id"], (faces / "biden/biden.jpg").read_bytes(), "b.jpg")
    assert outlier.status_code == 422
    (rejection,) = outlier.json()["rejected"]
    assert "unlike Barack Obama's other 1 photo(s)" in rejection["reason"]
    assert "force=true" in rejection["reason"]
    # A genuine second photo of the same person passes both checks.
    second = upload(client, obama["id"], (faces / "obama/obama2.jpg").read_bytes(), "o2.jpg")
    assert second.status_code == 201, second.text
    # Obama enrolled a second time under another name: a possible duplicate person.
    twin = person(client, "B. Obama")
    again = upload(client, twin["id"], (faces / "obama/obama2.jpg").read_bytes(), "o2.jpg")
    assert again.status_code == 422
    (rejection,) = again.json()["rejected"]
    assert "very like 'Barack Obama'" in rejection["reason"]
    assert "enrolled twice" in rejection["reason"]
    forced = client.post(
        f"/api/v1/identities/{twin['id']}/faces?force=true",
        files={"file": ("o2.jpg", (faces / "obama/obama2.jpg").read_bytes())},
    )
    assert forced.status_code == 201, forced.text
    assert client.get(f"/api/v1/identities/{obama['id']}").json()["face_count"] == 2
