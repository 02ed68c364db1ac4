"""Identities and their face samples."""

from __future__ import annotations

from dataclasses import dataclass
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


def delete_face(conn: Conn, face_id: int) -> int | None:
    """Delete one face sample; the identity it belonged to (None: no such face)."""
    row = conn.execute(
        "DELETE FROM face_samples WHERE id = %s RETURNING identity_id", (face_id,)
    ).fetchone()
    return None if row is None else int(row["identity_id"])


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


# COPY ... (FORMAT BINARY) of (id bigint, identity_id bigint, embedding real[128]): every row is
# the same 1,074 bytes (field count, two length-prefixed int8, a length-prefixed one-dimensional
# float4 array of 128 elements each with its own length), so numpy reads the rows in place.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_SAMPLE_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("id_len", ">i4"),
        ("id", ">i8"),
        ("identity_len", ">i4"),
        ("identity_id", ">i8"),
        ("array_len", ">i4"),
        ("ndim", ">i4"),
        ("has_null", ">i4"),
        ("element_oid", ">u4"),
        ("dim", ">i4"),
        ("lower_bound", ">i4"),
        ("elements", [("len", ">i4"), ("value", ">f4")], (128,)),
    ]
)
_FLOAT4_OID = 700


class GalleryFormatError(ValueError):
    """A stored embedding the binary loader cannot read (not 128 float4 values without NULLs)."""


@dataclass
class GallerySnapshot:
    """Enrolled samples: one row each (embedding, its identity, its sample id) and the names."""

    embeddings: np.ndarray
    identity_ids: np.ndarray
    sample_ids: np.ndarray
    names: dict[int, str]


def _parse_sample_rows(buffer: memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(buffer) % _SAMPLE_ROW.itemsize:  # a NULL element shortens its row
        raise GalleryFormatError("a face sample's embedding is not 128 float4 values")
    rows = np.frombuffer(buffer, dtype=_SAMPLE_ROW)
    if len(rows) and not (
        (rows["fields"] == 3).all()
        & (rows["id_len"] == 8).all()
        & (rows["identity_len"] == 8).all()
        & (rows["array_len"] == _SAMPLE_ROW["elements"].itemsize + 20).all()
        & (rows["ndim"] == 1).all()
        & (rows["has_null"] == 0).all()
        & (rows["element_oid"] == _FLOAT4_OID).all()
        & (rows["dim"] == 128).all()
        & (rows["elements"]["len"] == 4).all()
    ):
        raise GalleryFormatError("a face sample's embedding is not 128 float4 values")
    embeddings = rows["elements"]["value"].astype(np.float32)
    return embeddings, rows["identity_id"].astype(np.int64), rows["id"].astype(np.int64)


def load_gallery_binary(conn: Conn, *, chunk_bytes: int = 64 << 20) -> GallerySnapshot:
    """Every enrolled sample, read with one binary COPY parsed by numpy (no per-row Python),
    and every identity's name, from one snapshot (REPEATABLE READ)."""
    embeddings: list[np.ndarray] = []
    identity_ids: list[np.ndarray] = []
    sample_ids: list[np.ndarray] = []
    pending = bytearray()
    header_done = False
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if idle:  # else the caller's transaction is the snapshot
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY (SELECT id, identity_id, embedding FROM face_samples)"
                " TO STDOUT (FORMAT BINARY)"
            ) as copy,
        ):
            for data in copy:
                pending += data
                if not header_done and len(pending) >= 19:
                    if bytes(pending[:11]) != _COPY_SIGNATURE:
                        raise GalleryFormatError("not a binary COPY stream")
                    extension = int.from_bytes(pending[15:19], "big")
                    del pending[: 19 + extension]
                    header_done = True
                if header_done and len(pending) >= chunk_bytes:
                    whole = len(pending) // _SAMPLE_ROW.itemsize * _SAMPLE_ROW.itemsize
                    for out, part in zip(
                        (embeddings, identity_ids, sample_ids),
                        _parse_sample_rows(memoryview(pending)[:whole]),
                        strict=True,
                    ):
                        out.append(part)
                    del pending[:whole]
        names = {
            int(r["id"]): r["display_name"]
            for r in conn.execute("SELECT id, display_name FROM identities")
        }
    if bytes(pending[-2:]) != b"\xff\xff":
        raise GalleryFormatError("the binary COPY stream ended early")
    for out, part in zip(
        (embeddings, identity_ids, sample_ids),
        _parse_sample_rows(memoryview(pending)[:-2]),
        strict=True,
    ):
        out.append(part)
    return GallerySnapshot(
        np.concatenate(embeddings).reshape(-1, 128),
        np.concatenate(identity_ids),
        np.concatenate(sample_ids),
        names,
    )


def identity_gallery_rows(
    conn: Conn, identity_id: int
) -> tuple[str | None, np.ndarray, np.ndarray]:
    """One identity's name (None if it no longer exists), embeddings and sample ids."""
    identity = conn.execute(
        "SELECT display_name FROM identities WHERE id = %s", (identity_id,)
    ).fetchone()
    if identity is None:
        return None, np.zeros((0, 128), np.float32), np.zeros(0, np.int64)
    rows = conn.execute(
        "SELECT id, embedding FROM face_samples WHERE identity_id = %s ORDER BY id",
        (identity_id,),
    ).fetchall()
    return (
        identity["display_name"],
        np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(-1, 128),
        np.array([r["id"] for r in rows], dtype=np.int64),
    )


def samples_after(conn: Conn, sample_id: int, *, limit: int = 10_000) -> GallerySnapshot:
    """Samples with an id above `sample_id` (at most `limit`, lowest first), with names."""
    rows = conn.execute(
        "SELECT f.id, f.identity_id, i.display_name, f.embedding FROM face_samples f"
        " JOIN identities i ON i.id = f.identity_id WHERE f.id > %s ORDER BY f.id LIMIT %s",
        (sample_id, limit),
    ).fetchall()
    return GallerySnapshot(
        np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(-1, 128),
        np.array([r["identity_id"] for r in rows], dtype=np.int64),
        np.array([r["id"] for r in rows], dtype=np.int64),
        {int(r["identity_id"]): r["display_name"] for r in rows},
    )


def sample_summary(conn: Conn) -> tuple[int, int]:
    """(face samples stored, sum of their ids): a cheap fingerprint of the gallery's contents."""
    row = one(conn.execute("SELECT count(*) AS n, coalesce(sum(id), 0) AS s FROM face_samples"))
    return int(row["n"]), int(row["s"])
