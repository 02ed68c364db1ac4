"""API keys: stored as argon2id hashes, listed, revoked (watchpost.auth checks them)."""

from __future__ import annotations

from watchpost.db.pool import Conn, Row, one

_KEY_COLUMNS = "id, key_id, name, role, created_at, last_used_at, revoked_at"


def insert_key(conn: Conn, *, key_id: str, name: str, role: str, secret_hash: str) -> Row:
    return one(
        conn.execute(
            f"INSERT INTO api_keys (key_id, name, role, secret_hash) VALUES (%s, %s, %s, %s)"
            f" RETURNING {_KEY_COLUMNS}",
            (key_id, name, role, secret_hash),
        )
    )


def key_for_check(conn: Conn, key_id: str) -> Row | None:
    """The stored hash and status of a key, by the public part of the key."""
    return conn.execute(
        f"SELECT {_KEY_COLUMNS}, secret_hash FROM api_keys WHERE key_id = %s", (key_id,)
    ).fetchone()


def touch_key(conn: Conn, key_id: str) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = %s", (key_id,))


def list_keys(conn: Conn, *, include_revoked: bool = False) -> list[Row]:
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    return conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys{where} ORDER BY id").fetchall()


def revoke_key(conn: Conn, key_id: str) -> Row | None:
    """Revoke by key id (or by the row's numeric id); None when no live key matches."""
    return conn.execute(
        f"UPDATE api_keys SET revoked_at = now() WHERE (key_id = %s OR id::text = %s)"
        f" AND revoked_at IS NULL RETURNING {_KEY_COLUMNS}",
        (key_id, key_id),
    ).fetchone()


def count_admin_keys(conn: Conn) -> int:
    row = one(
        conn.execute(
            "SELECT count(*) AS n FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"
        )
    )
    return int(row["n"])
