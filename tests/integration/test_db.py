"""Storage against a real PostgreSQL, one fresh schema per test."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from tests.support.values import present
from watchpost.db import alerts, apply_migrations, cameras, identities
from watchpost.db.cameras import CameraStatus
from watchpost.db.migrate import available_migrations
from watchpost.messages import AlertKind


def test_migrations_are_applied_once_and_recorded(database_url):
    versions = [v for v, _, _ in available_migrations()]
    assert apply_migrations(database_url) == versions
    assert apply_migrations(database_url) == []
    with psycopg.connect(database_url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
    assert recorded == versions
    assert {"identities", "face_samples", "cameras", "alerts"} <= tables


def test_identity_with_faces_and_cascading_delete(pool):
    with pool.connection() as conn:
        person = identities.create_identity(conn, display_name="Ann", login_name="ann")
        for k in range(2):
            identities.add_face_sample(
                conn,
                identity_id=person["id"],
                embedding=np.full(128, k, np.float32),
                box=(1, 2, 3, 4),
                image_jpeg=b"jpeg",
            )
        matrix, ids, names = identities.load_gallery(conn)
        assert matrix.shape == (2, 128) and ids == [person["id"]] * 2 and names == ["Ann", "Ann"]
        assert present(identities.get_identity(conn, person["id"]))["face_count"] == 2
        assert identities.delete_identity(conn, person["id"])
        assert conn.execute("SELECT count(*) AS n FROM face_samples").fetchone()["n"] == 0
        assert not identities.delete_identity(conn, person["id"])
        assert identities.load_gallery(conn)[0].shape == (0, 128)


def test_duplicate_login_is_refused(pool):
    with pool.connection() as conn:
        identities.create_identity(conn, display_name="Ann", login_name="ann")
        with pytest.raises(identities.DuplicateLoginError):
            identities.create_identity(conn, display_name="Other Ann", login_name="ann")


def test_embedding_must_be_128_wide(pool):
    with pool.connection() as conn:
        person = identities.create_identity(conn, display_name="Ann")
        with pytest.raises(psycopg.errors.CheckViolation):
            identities.add_face_sample(
                conn,
                identity_id=person["id"],
                embedding=np.zeros(5),
                box=(1, 2, 3, 4),
                image_jpeg=b"x",
            )


def test_alert_upsert_is_idempotent_on_its_natural_key(pool):
    with pool.connection() as conn:
        args: dict[str, Any] = dict(
            kind=AlertKind.UNKNOWN_PERSON,
            camera_id="door",
            track_id="t1",
            captured_at=1_700_000_000.0,
            distance=0.8,
            snapshot_jpeg=b"jpeg",
        )
        first, created = alerts.upsert_alert(conn, **args)
        again, created_again = alerts.upsert_alert(conn, **args)
        assert created and not created_again and again["id"] == first["id"]
        alerts.upsert_alert(conn, **{**args, "kind": AlertKind.SPOOF_ATTEMPT})
        assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 2
        assert alerts.get_snapshot(conn, first["id"]) == b"jpeg"
        assert first["has_snapshot"]


def test_alert_listing_filters_and_pages(pool):
    with pool.connection() as conn:
        ids = [
            alerts.upsert_alert(conn, kind=k, camera_id=c, track_id=f"t{n}", captured_at=1.0)[0][
                "id"
            ]
            for n, (k, c) in enumerate(
                [
                    (AlertKind.UNKNOWN_PERSON, "a"),
                    (AlertKind.ACCESS_GRANTED, "a"),
                    (AlertKind.UNKNOWN_PERSON, "b"),
                    (AlertKind.UNKNOWN_PERSON, "a"),
                ]
            )
        ]
        assert [r["id"] for r in alerts.list_alerts(conn)] == ids[::-1]
        assert [
            r["id"] for r in alerts.list_alerts(conn, kind=AlertKind.UNKNOWN_PERSON, camera_id="a")
        ] == [ids[3], ids[0]]
        page1 = alerts.list_alerts(conn, limit=2)
        page2 = alerts.list_alerts(conn, before_id=page1[-1]["id"], limit=2)
        assert [r["id"] for r in page1 + page2] == ids[::-1]
        assert [r["id"] for r in alerts.list_alerts(conn, after_id=ids[1])] == ids[2:]


def test_camera_status(pool):
    with pool.connection() as conn:
        cameras.upsert_camera(conn, camera_id="door", name="door", source="/x.mp4")
        cameras.report_status(
            conn, camera_id="door", status=CameraStatus.ERROR, error="video file not found"
        )
        row = present(cameras.get_camera(conn, "door"))
        assert (row["status"], row["last_error"]) == ("error", "video file not found")


def test_an_alert_naming_a_just_deleted_identity_is_kept_without_the_link_or_name(pool):
    with pool.connection() as conn:
        gone = identities.create_identity(conn, display_name="Gone")["id"]
        identities.delete_identity(conn, gone)
        row, created = alerts.upsert_alert(
            conn,
            kind=AlertKind.ACCESS_GRANTED,
            camera_id="door",
            track_id="t",
            captured_at=1.0,
            identity_id=gone,
            display_name="Gone",
        )
    # The person was erased: the alert stays, their name does not (see test_security).
    assert created and row["identity_id"] is None and row["display_name"] is None
