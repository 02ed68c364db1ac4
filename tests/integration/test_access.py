"""Access control: API keys and roles, page sessions, the websocket and live view, service
tokens, rate limits, CORS, the audit log, erasure of a person and the retention job. (The
security review's findings have their own tests in test_security.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from services.dashboard.main import create_app as dashboard_app
from services.liveness.main import create_app as liveness_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import DASHBOARD_HEADERS, RECOGNITION_HEADERS, key_headers
from tests.integration.test_dashboard import store_alert
from watchpost.auth import KeyVerifier
from watchpost.db import alerts, api_keys, audit_log, identities, retention
from watchpost.images import encode_jpeg
from watchpost.messages import AlertKind
from watchpost.settings import (
    PROJECT_ROOT,
    DashboardSettings,
    LivenessSettings,
    RecognitionSettings,
)

NOBODY = {"Authorization": ""}


@pytest.fixture
def dashboard(env_settings):
    """A running dashboard and a client without credentials."""

    def start(**overrides):
        return TestClient(dashboard_app(env_settings(DashboardSettings, **overrides)))

    return start


def test_every_api_route_refuses_a_caller_without_credentials(env_settings):
    app = dashboard_app(env_settings(DashboardSettings))
    with TestClient(app) as client:
        operations = [
            (method, path)
            for path, item in app.openapi()["paths"].items()
            for method in item
            if path.startswith("/api/v1") or path == "/dashboard"
        ]
        assert len(operations) >= 25
        for method, template in operations:
            if template == "/api/v1/session" and method in ("post", "delete"):
                continue  # signing in and out
            path = template.format(
                identity_id=1,
                face_id=1,
                alert_id=1,
                camera_id="door",
                sighting_id=1,
                group_id=1,
                key_id="k",
            )
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
        # The ops endpoints and the page itself stay open (health checks, the sign-in form).
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "key",
    [
        "wp_nope",  # malformed
        "wp_0123456789ab_" + "A" * 43,  # well-formed, unknown
        "Basic dXNlcjpwYXNz",
    ],
)
def test_bad_keys_are_refused_alike(dashboard, key):
    with dashboard() as client:
        response = client.get("/api/v1/alerts", headers=key_headers(key))
        assert response.status_code == 401
        assert response.json()["detail"] == "sign in or send an API key"  # no hint which part


def test_roles(dashboard, make_key, pool, redis_client, prefix):
    alert_id = store_alert(pool, redis_client, prefix, "t1")
    viewer, operator, admin = (key_headers(make_key(r)) for r in ("viewer", "operator", "admin"))
    person = {"display_name": "Ann"}
    with dashboard() as client:
        assert client.get("/api/v1/alerts", headers=viewer).status_code == 200
        assert client.get("/api/v1/cameras", headers=viewer).status_code == 200
        refused = client.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=viewer)
        assert refused.status_code == 403 and "operator role" in refused.json()["detail"]
        assert client.post("/api/v1/identities", json=person, headers=viewer).status_code == 403
        assert client.post("/api/v1/identities", json=person, headers=operator).status_code == 403
        assert client.get("/api/v1/audit", headers=operator).status_code == 403
        ack = client.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=operator)
        assert ack.status_code == 200 and ack.json()["acknowledged_by"].startswith("test-operator")
        assert client.post("/api/v1/identities", json=person, headers=admin).status_code == 201


def test_a_revoked_key_stops_working_with_its_sessions(dashboard, make_key, pool):
    key = make_key("viewer")
    with dashboard(auth_cache_seconds=0) as client:
        assert client.get("/api/v1/alerts", headers=key_headers(key)).status_code == 200
        login = client.post("/api/v1/session", json={"key": key}, headers=NOBODY)
        assert login.status_code == 200 and login.json()["role"] == "viewer"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/api/v1/alerts", headers=NOBODY).status_code == 200  # by the cookie
        with pool.connection() as conn:
            assert api_keys.revoke_key(conn, key.split("_")[1]) is not None
        assert client.get("/api/v1/alerts", headers=key_headers(key)).status_code == 401
        assert client.get("/api/v1/alerts", headers=NOBODY).status_code == 401
        assert client.post("/api/v1/session", json={"key": key}).status_code == 401


def test_signing_out_ends_the_session(dashboard, make_key):
    with dashboard() as client:
        client.post("/api/v1/session", json={"key": make_key("viewer")})
        assert client.get("/api/v1/session").json()["role"] == "viewer"
        token = client.cookies.get("watchpost_session")
        assert client.delete("/api/v1/session").status_code == 204
        client.cookies.set("watchpost_session", token)  # replaying the old cookie
        assert client.get("/api/v1/session").status_code == 401


def test_login_attempts_are_rate_limited_and_audited(dashboard, make_key, pool):
    with dashboard(dashboard_login_per_minute=3) as client:
        codes = [
            client.post("/api/v1/session", json={"key": f"wp_guess{i:08d}_" + "x" * 40}).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        limited = client.post("/api/v1/session", json={"key": make_key("admin")})
        assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 60
    with pool.connection() as conn:
        actions = [e["action"] for e in audit_log.list_audit(conn)]
    assert actions.count("login_failed") == 3


def test_enrolment_is_rate_limited_per_key(dashboard, admin_key):
    photo = encode_jpeg(np.full((64, 64, 3), 128, np.uint8))  # refused as faceless, but counted
    with dashboard(dashboard_enrol_per_minute=2) as client:
        client.headers.update(key_headers(admin_key))
        identity = client.post("/api/v1/identities", json={"display_name": "X"}).json()
        url = f"/api/v1/identities/{identity['id']}/faces"
        codes = [client.post(url, files={"file": ("f.jpg", photo)}).status_code for _ in range(3)]
    assert codes[2] == 429 and codes[:2] != [429, 429]


def test_websocket_and_live_view_need_a_caller(dashboard, make_key):
    key = make_key("viewer")
    with dashboard() as client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/api/v1/alerts/ws") as ws,
        ):
            ws.receive_json()
        assert refused.value.code == 1008
        assert client.get("/api/v1/cameras/door/live.mjpg").status_code == 401
        # Another site's page riding a signed-in browser's cookie is refused by its Origin.
        client.post("/api/v1/session", json={"key": key})
        with (
            pytest.raises(WebSocketDisconnect) as cross_site,
            client.websocket_connect(
                "/api/v1/alerts/ws", headers={"Origin": "https://evil.example"}
            ) as ws,
        ):
            ws.receive_json()
        assert cross_site.value.code == 1008
        with client.websocket_connect(
            "/api/v1/alerts/ws?after=0", headers={"Origin": "http://testserver"}
        ):
            pass  # accepted: same origin, signed in


def test_cors_is_closed_unless_an_origin_is_named(dashboard, admin_key):
    preflight = {
        "Origin": "https://soc.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with dashboard() as client:
        response = client.options("/api/v1/alerts", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        simple = client.get(
            "/api/v1/alerts", headers={**key_headers(admin_key), "Origin": "https://soc.example"}
        )
        assert "access-control-allow-origin" not in simple.headers
    with dashboard(dashboard_cors_origins=["https://soc.example"]) as client:
        response = client.options("/api/v1/alerts", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://soc.example"
        other = client.options("/api/v1/alerts", headers={**preflight, "Origin": "https://x.io"})
        assert "access-control-allow-origin" not in other.headers
    with pytest.raises(ValueError, match="explicit origin"):
        DashboardSettings(dashboard_cors_origins=["*"])


def test_services_call_each_other_with_their_own_tokens(env_settings):
    photo = {"file": ("f.jpg", encode_jpeg(np.full((64, 64, 3), 128, np.uint8)))}
    wrong = {"Authorization": "Bearer " + "w" * 40}
    with TestClient(recognition_app(env_settings(RecognitionSettings))) as recognition:
        for headers in ({}, wrong, RECOGNITION_HEADERS):  # recognition's token is for liveness
            for path in ("/v1/faces", "/v1/identify"):
                assert recognition.post(path, files=photo, headers=headers).status_code == 401
        allowed = recognition.post("/v1/faces", files=photo, headers=DASHBOARD_HEADERS)
        assert allowed.status_code == 200 and allowed.json()["faces"] == []
        assert recognition.get("/healthz").status_code == 200
    with TestClient(liveness_app(env_settings(LivenessSettings))) as liveness:
        for headers in (wrong, DASHBOARD_HEADERS):  # the dashboard never calls liveness
            assert liveness.post("/v1/liveness", files=photo, headers=headers).status_code == 401
        assert (
            liveness.post("/v1/liveness", files=photo, headers=RECOGNITION_HEADERS).status_code
            == 200
        )
    for create, cls, field, name in (
        (recognition_app, RecognitionSettings, "dashboard_service_token", "DASHBOARD"),
        (liveness_app, LivenessSettings, "recognition_service_token", "RECOGNITION"),
        (dashboard_app, DashboardSettings, "dashboard_service_token", "DASHBOARD"),
    ):
        with pytest.raises(RuntimeError, match=f"WATCHPOST_{name}_SERVICE_TOKEN is not set"):
            create(env_settings(cls, **{field: None}))
    with pytest.raises(RuntimeError, match="WATCHPOST_RECOGNITION_SERVICE_TOKEN is not set"):
        recognition_app(
            env_settings(
                RecognitionSettings,
                recognition_service_token=None,
                recognition_liveness_url="http://127.0.0.1:9",
            )
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dashboard_service_token", "change-me"),
        ("recognition_service_token", "<generate a token here>"),
        ("dashboard_service_token", "short-but-random-1"),
        ("http_metrics_token", "changeme"),
        ("database_url", "postgresql://watchpost:changeme@db/watchpost"),
        ("redis_url", "redis://:password@redis:6379/0"),
    ],
)
def test_placeholder_secrets_are_refused(field, value):
    with pytest.raises(ValueError, match="placeholder"):
        RecognitionSettings(**{field: value})


def test_the_audit_log_records_who_did_what(dashboard, make_key, pool, redis_client, prefix):
    alert_id = store_alert(pool, redis_client, prefix, "a")
    admin, operator = make_key("admin", name="Ada"), make_key("operator", name="Oz")
    with dashboard() as client:
        client.headers.update(key_headers(admin))
        ident = client.post("/api/v1/identities", json={"display_name": "Ann"}).json()
        client.patch(f"/api/v1/identities/{ident['id']}", json={"display_name": "Anne"})
        camera = {
            "id": "door-2",
            "name": "Door",
            "source": "rtsp://10.0.0.5/door",
            "enabled": False,
        }
        client.post("/api/v1/cameras", json=camera)
        client.post(
            f"/api/v1/alerts/{alert_id}/ack", json={"note": "seen"}, headers=key_headers(operator)
        )
        client.delete(f"/api/v1/identities/{ident['id']}")
        entries = client.get("/api/v1/audit").json()
    got = [(e["action"], e["actor"].split(" ")[0], e["target_id"]) for e in reversed(entries)]
    assert got == [
        ("identity_create", "Ada", str(ident["id"])),
        ("identity_update", "Ada", str(ident["id"])),
        ("camera_create", "Ada", "door-2"),
        ("alert_acknowledge", "Oz", str(alert_id)),
        ("identity_erase", "Ada", str(ident["id"])),
    ]
    assert entries[1]["details"] == {"note": "seen"} and entries[0]["client"] == "testclient"


def test_erasing_a_person_removes_everything_derived_from_them(pool, admin_key, dashboard):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann", login_name="ann")
        identities.add_face_sample(
            conn,
            identity_id=ann["id"],
            embedding=np.zeros(128, np.float32),
            box=(0, 10, 10, 0),
            image_jpeg=b"\xff\xd8face",
        )
        named, _ = alerts.upsert_alert(
            conn,
            kind=AlertKind.ACCESS_GRANTED,
            camera_id="door",
            track_id="t1",
            captured_at=1_700_000_000.0,
            identity_id=ann["id"],
            display_name="Ann",
            details={"blinks": 2},
            snapshot_jpeg=b"\xff\xd8snap",
            face_jpeg=b"\xff\xd8face",
        )
        claimed, _ = alerts.upsert_alert(
            conn,
            kind=AlertKind.IDENTITY_MISMATCH,
            camera_id="kiosk",
            track_id="t2",
            captured_at=1_700_000_000.0,
            claimed_login="ann",
            snapshot_jpeg=b"\xff\xd8other",
        )
        stranger, _ = alerts.upsert_alert(
            conn, kind=AlertKind.UNKNOWN_PERSON, camera_id="door", track_id="t3", captured_at=1.0
        )
    with dashboard() as client:
        response = client.delete(f"/api/v1/identities/{ann['id']}", headers=key_headers(admin_key))
    assert response.status_code == 204
    with pool.connection() as conn:
        rows = {
            r["id"]: r
            for r in conn.execute(
                "SELECT id, identity_id, display_name, claimed_login, details, snapshot_jpeg,"
                " face_jpeg FROM alerts"
            ).fetchall()
        }
        faces = conn.execute("SELECT count(*) AS n FROM face_samples").fetchone()["n"]
        (entry,) = audit_log.list_audit(conn)
    assert faces == 0
    assert rows[named["id"]] == {
        "id": named["id"],
        "identity_id": None,
        "display_name": None,
        "claimed_login": None,
        "details": {"erased": True},
        "snapshot_jpeg": None,
        "face_jpeg": None,
    }
    assert rows[claimed["id"]]["claimed_login"] is None  # their login name is theirs too
    assert rows[stranger["id"]]["details"] == {}  # nothing else was touched
    assert entry["details"]["faces"] == 1 and entry["details"]["alerts_scrubbed"] == 2


def test_the_retention_job_purges_old_alerts_snapshots_and_audit(pool):
    with pool.connection() as conn:
        for track, age_days in (("old", 400), ("middle", 40), ("new", 1)):
            row, _ = alerts.upsert_alert(
                conn,
                kind=AlertKind.UNKNOWN_PERSON,
                camera_id="door",
                track_id=track,
                captured_at=1.0,
                snapshot_jpeg=b"\xff\xd8",
                face_jpeg=b"\xff\xd8",
            )
            conn.execute(
                "UPDATE alerts SET created_at = now() - make_interval(days => %s) WHERE id = %s",
                (age_days, row["id"]),
            )
        audit_log.audit(conn, actor="a", role="admin", action="old")
        conn.execute("UPDATE audit_log SET at = now() - interval '800 days'")
        audit_log.audit(conn, actor="a", role="admin", action="recent")
        removed = retention.purge_expired(conn, alert_days=365, snapshot_days=30, audit_days=730)
        left = conn.execute(
            "SELECT track_id, snapshot_jpeg IS NOT NULL AS snap FROM alerts ORDER BY track_id"
        ).fetchall()
        audit_left = [e["action"] for e in audit_log.list_audit(conn)]
    assert removed == {
        "alerts": 1,
        "snapshots": 1,
        "audit": 1,
        "sightings": 0,
        "sighting_snapshots": 0,
        "unknown_groups": 0,
    }
    assert left == [{"track_id": "middle", "snap": False}, {"track_id": "new", "snap": True}]
    assert audit_left == ["recent"]


def test_keys_cli_creates_lists_and_revokes(migrated_url, pool):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "watchpost.cli", "keys", *args],
            env=dict(os.environ, WATCHPOST_DATABASE_URL=migrated_url),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = cli("create", "--name", "Door kiosk", "--role", "operator")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert KeyVerifier(pool).check_uncached(key).role.name == "operator"
    with pool.connection() as conn:
        stored = conn.execute("SELECT secret_hash FROM api_keys").fetchone()["secret_hash"]
    assert stored.startswith("$argon2id$") and key.split("_", 2)[2] not in stored
    listed = cli("list")
    assert key_id in listed.stdout and "Door kiosk" in listed.stdout and key not in listed.stdout
    assert cli("revoke", key_id).returncode == 0
    assert cli("revoke", key_id).returncode == 1  # already revoked
    assert key_id not in cli("list").stdout and key_id in cli("list", "--all").stdout
    with pool.connection() as conn:
        actions = [e["action"] for e in audit_log.list_audit(conn)]
    assert actions == ["key_revoke", "key_create"]


def test_secrets_cli_generates_and_never_overwrites(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# mine\nPOSTGRES_PASSWORD=kept-as-is-0123456789\nREDIS_PASSWORD=\n")

    def cli():
        return subprocess.run(
            [sys.executable, "-m", "watchpost.cli", "secrets", "--env-file", str(env)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    tokens = ["WATCHPOST_DASHBOARD_SERVICE_TOKEN", "WATCHPOST_RECOGNITION_SERVICE_TOKEN"]
    assert f"generated REDIS_PASSWORD, {', '.join(tokens)}" in cli()
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
    assert values["POSTGRES_PASSWORD"] == "kept-as-is-0123456789"
    assert all(len(values[name]) == 48 for name in ["REDIS_PASSWORD", *tokens])
    assert values[tokens[0]] != values[tokens[1]]
    assert env.stat().st_mode & 0o777 == 0o600
    assert "already set" in cli()
    assert env.read_text().startswith("# mine\n")
