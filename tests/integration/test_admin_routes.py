"""Admin routes of the dashboard: API keys from the page, the calibration report proxied from
recognition (real Postgres, Redis and, for calibration, a real recognition server)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.dashboard.main import create_app as dashboard_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import key_headers
from tests.integration.test_recognition import enrol_for_calibration
from tests.support.servers import free_port, serving
from watchpost.settings import DashboardSettings, RecognitionSettings


@pytest.fixture
def admin(env_settings, admin_key):
    # Nothing listens on the recognition URL: routes that need it answer 503.
    settings = env_settings(
        DashboardSettings, dashboard_recognition_url=f"http://127.0.0.1:{free_port()}"
    )
    with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
        yield client


def test_keys_are_created_shown_once_listed_without_secrets_and_revoked(admin):
    created = admin.post("/api/v1/keys", json={"name": "Gate guard", "role": "operator"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "operator" and body["name"] == "Gate guard"
    assert body["key"].startswith(f"wp_{body['key_id']}_")
    assert "secret_hash" not in body
    # The new key works, with its role.
    who = admin.get("/api/v1/session", headers=key_headers(body["key"]))
    assert who.json() == {"name": "Gate guard", "role": "operator", "key_id": body["key_id"]}

    listed = admin.get("/api/v1/keys").json()
    assert body["key_id"] in [k["key_id"] for k in listed]
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    assert body["key"] not in admin.get("/api/v1/keys").text

    revoked = admin.delete(f"/api/v1/keys/{body['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert "key" not in revoked.json()
    # At once, though the key was just checked (and its good check cached).
    assert admin.get("/api/v1/session", headers=key_headers(body["key"])).status_code == 401
    assert body["key_id"] not in [k["key_id"] for k in admin.get("/api/v1/keys").json()]
    everything = admin.get("/api/v1/keys?include_revoked=true").json()
    assert body["key_id"] in [k["key_id"] for k in everything]
    assert admin.delete(f"/api/v1/keys/{body['key_id']}").status_code == 404  # already revoked

    actions = [(e["action"], e["target_id"]) for e in admin.get("/api/v1/audit").json()]
    assert ("key_create", body["key_id"]) in actions and ("key_revoke", body["key_id"]) in actions
    audit_text = admin.get("/api/v1/audit").text
    assert body["key"] not in audit_text and body["key"].split("_")[2] not in audit_text


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "", "role": "viewer"}, "name"),
        ({"name": "a\nb", "role": "viewer"}, "control characters"),
        ({"role": "viewer"}, "name"),
        ({"name": "x", "role": "viewer", "secret": "mine"}, "secret"),
    ],
)
def test_bad_key_requests_are_422_with_a_reason(admin, payload, reason):
    response = admin.post("/api/v1/keys", json=payload)
    assert response.status_code == 422
    assert reason in response.text


def test_unknown_key_is_404_and_the_last_admin_key_stays(admin, pool):
    assert admin.delete("/api/v1/keys/000000000000").status_code == 404
    from watchpost.db import api_keys

    with pool.connection() as conn:
        (mine,) = [k for k in api_keys.list_keys(conn) if k["role"] == "admin"]
    last = admin.delete(f"/api/v1/keys/{mine['key_id']}")
    assert last.status_code == 409 and "last admin key" in last.json()["detail"]
    assert admin.get("/api/v1/session").status_code == 200


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_manage_keys_and_see_calibration(admin, make_key, role):
    other = key_headers(make_key(role))
    target = admin.post("/api/v1/keys", json={"name": "t", "role": "viewer"}).json()["key_id"]
    for method, path, kwargs in [
        ("GET", "/api/v1/keys", {}),
        ("POST", "/api/v1/keys", {"json": {"name": "mine", "role": "admin"}}),
        ("DELETE", f"/api/v1/keys/{target}", {}),
        ("GET", "/api/v1/calibration", {}),
        ("GET", "/api/v1/audit", {}),
    ]:
        response = admin.request(method, path, headers=other, **kwargs)
        assert response.status_code == 403, (method, path)
        assert "admin role" in response.json()["detail"]
    assert target in [k["key_id"] for k in admin.get("/api/v1/keys").json()]  # not revoked
    assert admin.get("/api/v1/keys", headers={"Authorization": ""}).status_code == 401


def test_calibration_is_503_with_a_reason_when_recognition_is_away(admin):
    response = admin.get("/api/v1/calibration")
    assert response.status_code == 503
    assert "recognition service unreachable" in response.json()["detail"]
    assert admin.get("/api/v1/calibration?format=png").status_code == 422
    assert admin.get("/api/v1/calibration?target_far=2").status_code == 422


@pytest.mark.data
def test_calibration_report_comes_from_recognition(env_settings, admin_key, pool):
    with serving(recognition_app(env_settings(RecognitionSettings))) as recognition_url:
        settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
        with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as admin:
            too_few = admin.get("/api/v1/calibration")
            assert too_few.status_code == 409 and "at least 2 people" in too_few.json()["detail"]
            enrol_for_calibration(pool)
            report = admin.get("/api/v1/calibration", params={"target_far": 0.01})
            assert report.status_code == 200, report.text
            assert report.json()["identities"] == 4 and report.json()["target_far"] == 0.01
            plot = admin.get("/api/v1/calibration", params={"format": "svg"})
            assert plot.headers["content-type"].startswith("image/svg+xml")
            assert plot.text.startswith("<svg")


@pytest.mark.data
def test_a_person_thumbnail_is_their_first_photo(env_settings, admin_key, make_key):
    from tests.conftest import require_data
    from tests.integration.test_dashboard import person, upload
    from tests.support.dashboard import recognition_server

    photo = require_data("faces/train/obama/obama.jpg").read_bytes()
    with recognition_server(env_settings(RecognitionSettings)) as recognition_url:
        settings = env_settings(DashboardSettings, dashboard_recognition_url=recognition_url)
        with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as admin:
            obama = person(admin)
            assert admin.get(f"/api/v1/identities/{obama['id']}/thumbnail").status_code == 404
            assert upload(admin, obama["id"], photo).status_code == 201
            viewer = key_headers(make_key("viewer"))
            thumb = admin.get(f"/api/v1/identities/{obama['id']}/thumbnail", headers=viewer)
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
            assert thumb.headers["cache-control"] == "private, max-age=60"  # a new photo shows soon
            (face,) = admin.get(f"/api/v1/identities/{obama['id']}/faces").json()
            assert thumb.content == admin.get(f"/api/v1/faces/{face['id']}/image").content
            assert admin.get("/api/v1/identities/999999/thumbnail").status_code == 404
            assert admin.get("/api/v1/identities/x/thumbnail").status_code == 422
            anonymous = {"Authorization": ""}
            url = f"/api/v1/identities/{obama['id']}/thumbnail"
            assert admin.get(url, headers=anonymous).status_code == 401


def test_a_camera_snapshot_is_capture_s_latest_frame(admin, make_key, redis_client, prefix):
    from watchpost.images import encode_jpeg
    from watchpost.keys import Keys

    created = admin.post(
        "/api/v1/cameras", json={"id": "gate", "name": "Gate", "source": "rtsp://10.0.0.9/gate"}
    )
    assert created.status_code == 201, created.text
    viewer = key_headers(make_key("viewer"))
    waiting = admin.get("/api/v1/cameras/gate/snapshot.jpg", headers=viewer)
    assert waiting.status_code == 404
    assert "no frame from camera 'gate' yet (status " in waiting.json()["detail"]
    import numpy as np

    frame = encode_jpeg(np.full((48, 64, 3), 90, np.uint8))
    redis_client.set(Keys(prefix).live_frame("gate"), frame, ex=5)  # as capture keeps it
    shot = admin.get("/api/v1/cameras/gate/snapshot.jpg", headers=viewer)
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    assert shot.content == frame and shot.headers["cache-control"] == "no-store"
    assert admin.get("/api/v1/cameras/nope/snapshot.jpg").status_code == 404
    anonymous = admin.get("/api/v1/cameras/gate/snapshot.jpg", headers={"Authorization": ""})
    assert anonymous.status_code == 401
