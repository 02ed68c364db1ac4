"""Alerts: written once per natural key (camera, track, kind), read by the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ALERT_COLUMNS = (
    "id, kind, camera_id, track_id, identity_id, display_name, claimed_login, distance,"
    " liveness, reason, details, captured_at, created_at, acknowledged_at, acknowledged_by,"
    " snapshot_jpeg IS NOT NULL AS has_snapshot, face_jpeg IS NOT NULL AS has_face"
)


def upsert_alert(
    conn: psycopg.Connection,
    *,
    kind: str,
    camera_id: str,
    track_id: str,
    captured_at: float,
    identity_id: int | None = None,
    display_name: str | None = None,
    claimed_login: str | None = None,
    distance: float | None = None,
    liveness: str = "undecided",
    reason: str = "",
    details: dict[str, Any] | None = None,
    snapshot_jpeg: bytes | None = None,
    face_jpeg: bytes | None = None,
) -> tuple[dict, bool]:
    """Insert the alert unless its natural key exists; return (row, created_now)."""
    row = conn.execute(
        "INSERT INTO alerts (kind, camera_id, track_id, identity_id, display_name, claimed_login,"
        " distance, liveness, reason, details, snapshot_jpeg, face_jpeg, captured_at)"
        # A gallery snapshot can name a person deleted a moment ago: keep the alert, drop the link.
        " VALUES (%s, %s, %s, (SELECT id FROM identities WHERE id = %s),"
        " %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (camera_id, track_id, kind) DO NOTHING"
        f" RETURNING {ALERT_COLUMNS}",
        (
            kind,
            camera_id,
            track_id,
            identity_id,
            display_name,
            claimed_login,
            distance,
            liveness,
            reason,
            Jsonb(details or {}),
            snapshot_jpeg,
            face_jpeg,
            datetime.fromtimestamp(captured_at, UTC),
        ),
    ).fetchone()
    if row is not None:
        return row, True
    existing = conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE camera_id = %s AND track_id = %s AND kind = %s",
        (camera_id, track_id, kind),
    ).fetchone()
    return existing, False


def get_alert(conn: psycopg.Connection, alert_id: int) -> dict | None:
    return conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,)).fetchone()


def list_alerts(
    conn: psycopg.Connection,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    kind: str | None = None,
    camera_id: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """Newest first, keyset-paged by id (`before_id`); `after_id` returns oldest first instead,
    which is what a websocket client catching up after a reconnect wants."""
    where, params = [], []
    for clause, value in (
        ("id > %s", after_id),
        ("id < %s", before_id),
        ("kind = %s", kind),
        ("camera_id = %s", camera_id),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = f"SELECT {ALERT_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id ASC" if after_id is not None else " ORDER BY id DESC"
    sql += " LIMIT %s"
    return conn.execute(sql, (*params, limit)).fetchall()


def get_snapshot(conn: psycopg.Connection, alert_id: int) -> bytes | None:
    row = conn.execute("SELECT snapshot_jpeg FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    return None if row is None else row["snapshot_jpeg"]


def get_face(conn: psycopg.Connection, alert_id: int) -> bytes | None:
    """The raw face crop of the alert (no box drawn), for enrolling the person from it."""
    row = conn.execute("SELECT face_jpeg FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    return None if row is None else row["face_jpeg"]
