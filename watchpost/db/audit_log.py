"""The audit log: who signed in, enrolled, erased, acknowledged, changed cameras or keys."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from watchpost.db.pool import Conn, Row


def audit(
    conn: Conn,
    *,
    actor: str,
    role: str,
    action: str,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (actor, role, action, target_type, target_id, details, client)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            actor,
            role,
            action,
            target_type,
            None if target_id is None else str(target_id),
            Jsonb(details or {}),
            client,
        ),
    )


def list_audit(conn: Conn, *, limit: int = 100, before_id: int | None = None) -> list[Row]:
    return conn.execute(
        "SELECT id, at, actor, role, action, target_type, target_id, details, client"
        " FROM audit_log WHERE (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (before_id, before_id, limit),
    ).fetchall()
