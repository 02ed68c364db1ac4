"""Cameras and the status capture reports for them."""

from __future__ import annotations

from enum import StrEnum

from watchpost.db.pool import Conn, Row, one


class CameraStatus(StrEnum):
    """What capture last reported of a camera (the `cameras.status` column)."""

    UNKNOWN = "unknown"  # never reported (the column's default)
    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"  # the source went away; capture reconnects
    ERROR = "error"  # the source could not be opened
    ENDED = "ended"  # a file played to its end
    STOPPED = "stopped"  # capture stopped it (disabled, removed, shutting down)


CAMERA_COLUMNS = (
    "id, name, source, enabled, claimed_login, status, fps, last_frame_at, last_error,"
    " created_at, updated_at"
)


def upsert_camera(conn: Conn, *, camera_id: str, name: str, source: str) -> Row:
    return one(
        conn.execute(
            "INSERT INTO cameras (id, name, source) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, updated_at = now()"
            f" RETURNING {CAMERA_COLUMNS}",
            (camera_id, name, source),
        )
    )


def report_status(
    conn: Conn,
    *,
    camera_id: str,
    status: CameraStatus,
    fps: float | None = None,
    frame_seen: bool = False,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE cameras SET status = %s, fps = %s, last_error = %s, updated_at = now(),"
        " last_frame_at = CASE WHEN %s THEN now() ELSE last_frame_at END WHERE id = %s",
        (status, fps, error, frame_seen, camera_id),
    )


def list_cameras(conn: Conn) -> list[Row]:
    return conn.execute(f"SELECT {CAMERA_COLUMNS} FROM cameras ORDER BY id").fetchall()


def get_camera(conn: Conn, camera_id: str) -> Row | None:
    return conn.execute(
        f"SELECT {CAMERA_COLUMNS} FROM cameras WHERE id = %s", (camera_id,)
    ).fetchone()


def create_camera(
    conn: Conn,
    *,
    camera_id: str,
    name: str,
    source: str,
    enabled: bool = True,
    claimed_login: str | None = None,
) -> Row | None:
    """The new camera, or None if the id is taken."""
    return conn.execute(
        "INSERT INTO cameras (id, name, source, enabled, claimed_login) VALUES (%s, %s, %s, %s, %s)"
        f" ON CONFLICT (id) DO NOTHING RETURNING {CAMERA_COLUMNS}",
        (camera_id, name, source, enabled, claimed_login),
    ).fetchone()


def update_camera(conn: Conn, camera_id: str, **changes: str | bool | None) -> Row | None:
    allowed = {"name", "source", "enabled", "claimed_login"}
    if not changes.keys() <= allowed:
        raise ValueError(f"cannot update {sorted(changes.keys() - allowed)}")
    if not changes:
        return get_camera(conn, camera_id)
    assignments = "".join(f"{column} = %s, " for column in changes)
    return conn.execute(
        f"UPDATE cameras SET {assignments}updated_at = now() WHERE id = %s"
        f" RETURNING {CAMERA_COLUMNS}",
        (*changes.values(), camera_id),
    ).fetchone()


def delete_camera(conn: Conn, camera_id: str) -> bool:
    return conn.execute("DELETE FROM cameras WHERE id = %s", (camera_id,)).rowcount == 1


def enabled_cameras(conn: Conn) -> dict[str, str]:
    """Camera id -> source, for every enabled camera."""
    rows = conn.execute("SELECT id, source FROM cameras WHERE enabled ORDER BY id").fetchall()
    return {r["id"]: r["source"] for r in rows}


def claimed_identity(conn: Conn, camera_id: str) -> tuple[str, int | None] | None:
    """(claimed login, the identity with that login or None) for a camera bound to a login."""
    row = conn.execute(
        "SELECT c.claimed_login, i.id AS identity_id FROM cameras c"
        " LEFT JOIN identities i ON i.login_name = c.claimed_login"
        " WHERE c.id = %s AND c.claimed_login IS NOT NULL",
        (camera_id,),
    ).fetchone()
    return None if row is None else (row["claimed_login"], row["identity_id"])
