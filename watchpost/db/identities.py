"""Identities and their face samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from watchpost.db.pool import Conn, Row, one

_IDENTITY_COLUMNS = "id, display_name, login_name, metadata, created_at, updated_at"


class DuplicateLoginError(ValueError):
    pass


def create_identity(
    conn: Conn,
    *,
    display_name: str,
    login_name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Row:
    try:
        return one(
            conn.execute(
                f"INSERT INTO identities (display_name, login_name, metadata) VALUES (%s, %s, %s)"
                f" RETURNING {_IDENTITY_COLUMNS}",
                (display_name, login_name, Jsonb(metadata or {})),
            )
        )
    except psycopg.errors.UniqueViolation:
        raise DuplicateLoginError(f"login name {login_name!r} is already taken") from None


def get_identity(conn: Conn, identity_id: int) -> Row | None:
    return conn.execute(
        f"SELECT {_IDENTITY_COLUMNS}, (SELECT count(*) FROM face_samples f"
        f" WHERE f.identity_id = i.id) AS face_count FROM identities i WHERE id = %s",
        (identity_id,),
    ).fetchone()


def list_identities(
    conn: Conn, *, search: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Row], int]:
    """A page of identities whose display or login name contains `search`, and the total."""
    where, params = "", []
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = " WHERE i.display_name ILIKE %s OR i.login_name ILIKE %s"
        params = [pattern, pattern]
    total = int(one(conn.execute(f"SELECT count(*) AS n FROM identities i{where}", params))["n"])
    rows = conn.execute(
        f"SELECT {_IDENTITY_COLUMNS}, (SELECT count(*) FROM face_samples f"
        f" WHERE f.identity_id = i.id) AS face_count FROM identities i{where}"
        f" ORDER BY id LIMIT %s OFFSET %s",
        (*params, limit, offset),
    ).fetchall()
    return rows, total


def update_identity(conn: Conn, identity_id: int, **changes: Any) -> Row | None:
    """Change the given fields (display_name, login_name, metadata); None if no such identity."""
    allowed = {"display_name", "login_name", "metadata"}
    if not changes.keys() <= allowed:
        raise ValueError(f"cannot update {sorted(changes.keys() - allowed)}")
    if "metadata" in changes:
        changes["metadata"] = Jsonb(changes["metadata"] or {})
    assignments = "".join(f"{column} = %s, " for column in changes)
    try:
        row = conn.execute(
            f"UPDATE identities SET {assignments}updated_at = now() WHERE id = %s"
            f" RETURNING {_IDENTITY_COLUMNS}",
            (*changes.values(), identity_id),
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise DuplicateLoginError(
            f"login name {changes.get('login_name')!r} is already taken"
        ) from None
    return None if row is None else get_identity(conn, identity_id)


def find_by_login(conn: Conn, login_name: str) -> Row | None:
    return conn.execute(
        f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE login_name = %s", (login_name,)
    ).fetchone()


def find_by_display_name(conn: Conn, display_name: str) -> list[Row]:
    return conn.execute(
        f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE display_name = %s ORDER BY id",
        (display_name,),
    ).fetchall()


def identity_embeddings(conn: Conn, identity_id: int) -> np.ndarray:
    rows = conn.execute(
        "SELECT embedding FROM face_samples WHERE identity_id = %s ORDER BY id", (identity_id,)
    ).fetchall()
    return np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(-1, 128)


def list_faces(conn: Conn, identity_id: int) -> list[Row]:
    return conn.execute(
        "SELECT id, identity_id, box, created_at FROM face_samples WHERE identity_id = %s"
        " ORDER BY id",
        (identity_id,),
    ).fetchall()


def face_image(conn: Conn, face_id: int) -> bytes | None:
    row = conn.execute("SELECT image_jpeg FROM face_samples WHERE id = %s", (face_id,)).fetchone()
    return None if row is None else row["image_jpeg"]


def delete_face(conn: Conn, face_id: int) -> bool:
    return conn.execute("DELETE FROM face_samples WHERE id = %s", (face_id,)).rowcount == 1


def delete_identity(conn: Conn, identity_id: int) -> bool:
    """Delete the identity and (by cascade) every embedding and enrolment image of it."""
    return conn.execute("DELETE FROM identities WHERE id = %s", (identity_id,)).rowcount == 1


def add_face_sample(
    conn: Conn,
    *,
    identity_id: int,
    embedding: np.ndarray,
    box: tuple[int, int, int, int],
    image_jpeg: bytes,
) -> Row:
    return one(
        conn.execute(
            "INSERT INTO face_samples (identity_id, embedding, box, image_jpeg)"
            " VALUES (%s, %s, %s, %s) RETURNING id, identity_id, box, created_at",
            (identity_id, [float(x) for x in embedding], list(box), image_jpeg),
        )
    )


def load_gallery(conn: Conn) -> tuple[np.ndarray, list[int], list[str]]:
    """Every enrolled embedding as one (n, 128) matrix, with its identity id and name per row."""
    rows = conn.execute(
        "SELECT f.identity_id, i.display_name, f.embedding FROM face_samples f"
        " JOIN identities i ON i.id = f.identity_id ORDER BY f.id"
    ).fetchall()
    matrix = np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(-1, 128)
    return matrix, [r["identity_id"] for r in rows], [r["display_name"] for r in rows]
