"""Cameras and the status capture reports for them."""

from __future__ import annotations

import psycopg

CAMERA_COLUMNS = (
    "id, name, source, enabled, claimed_login, status, fps, last_frame_at, last_error,"
    " created_at, updated_at"
)


def upsert_camera(conn: psycopg.Connection, *, camera_id: str, name: str, source: str) -> dict:
    return conn.execute(
        "INSERT INTO cameras (id, name, source) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, updated_at = now()"
        f" RETURNING {CAMERA_COLUMNS}",
        (camera_id, name, source),
    ).fetchone()


def report_status(
    conn: psycopg.Connection,
    *,
    camera_id: str,
    status: str,
    fps: float | None = None,
    frame_seen: bool = False,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE cameras SET status = %s, fps = %s, last_error = %s, updated_at = now(),"
        " last_frame_at = CASE WHEN %s THEN now() ELSE last_frame_at END WHERE id = %s",
        (status, fps, error, frame_seen, camera_id),
    )


def list_cameras(conn: psycopg.Connection) -> list[dict]:
    return conn.execute(f"SELECT {CAMERA_COLUMNS} FROM cameras ORDER BY id").fetchall()


def get_camera(conn: psycopg.Connection, camera_id: str) -> dict | None:
    return conn.execute(
        f"SELECT {CAMERA_COLUMNS} FROM cameras WHERE id = %s", (camera_id,)
    ).fetchone()
