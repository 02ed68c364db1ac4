"""API keys, the audit log, and what erasing a person and the retention job remove."""

from __future__ import annotations

import re
from typing import Any

from psycopg.types.json import Jsonb

from watchpost.db import identities, sightings
from watchpost.db.pool import Conn, Row, one

ERASED = "[erased]"
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


def erase_identity(conn: Conn, identity_id: int) -> Row | None:
    """Delete a person and everything derived from them: face samples and embeddings (cascade),
    and in the alerts that name them, the name, the snapshot, the face crop and the evidence;
    their names in the alerts' free-text reasons become `[erased]`. The alert rows stay (an
    intrusion record must not vanish) but no longer say who it was. Their sightings (with their
    snapshots and face crops) and the unknown groups named as them are deleted (cascade; sightings
    hold no name in free text). Returns what was removed
    (`alert_ids`: the alerts scrubbed, `names`: the names they went by), or None when there is
    no such identity."""
    person = conn.execute(
        "SELECT id, display_name, login_name,"
        " (SELECT count(*) FROM face_samples WHERE identity_id = %s) AS faces,"
        " (SELECT count(*) FROM sightings WHERE identity_id = %s) AS sightings"
        " FROM identities WHERE id = %s FOR UPDATE",
        (identity_id, identity_id, identity_id),
    ).fetchone()
    if person is None:
        return None
    login = person["login_name"]
    named = conn.execute(
        "SELECT id, identity_id, display_name, reason FROM alerts"
        " WHERE identity_id = %s OR (%s::text IS NOT NULL AND claimed_login = %s) FOR UPDATE",
        (identity_id, login, login),
    ).fetchall()
    # The names they went by: now, and when alerts named them (they may have been renamed).
    names = {person["display_name"]}
    names |= {r["display_name"] for r in named if r["identity_id"] == identity_id}
    names.discard(None)
    # A scrubbed alert keeps no name at all (the row's display_name goes too, below).
    in_reason = [*names, *([login] if login else [])]
    conn.execute(
        "UPDATE alerts a SET display_name = NULL, snapshot_jpeg = NULL, face_jpeg = NULL,"
        " details = jsonb_build_object('erased', true), identity_id = NULL,"
        " claimed_login = CASE WHEN claimed_login = %s THEN NULL ELSE claimed_login END,"
        " reason = scrubbed.reason"
        " FROM unnest(%s::bigint[], %s::text[]) AS scrubbed(id, reason) WHERE a.id = scrubbed.id",
        (
            login,
            [r["id"] for r in named],
            [without_names(r["reason"], [*in_reason, r["display_name"]]) for r in named],
        ),
    )
    identities.delete_identity(conn, identity_id)  # samples, embeddings, sightings: cascade
    return {
        "faces": person["faces"],
        "sightings": person["sightings"],
        "alerts_scrubbed": len(named),
        "alert_ids": [r["id"] for r in named],
        "names": sorted(names),
    }


def without_names(text: str, names: list[str]) -> str:
    """The text with each name (whole words only, longest first) replaced by `[erased]`."""
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", ERASED, text)
    return text


def purge_expired(
    conn: Conn,
    *,
    alert_days: float,
    snapshot_days: float,
    audit_days: float,
    sighting_days: float = 0,
) -> dict[str, int]:
    """The retention job: delete alerts older than `alert_days`, drop the images of alerts and
    sightings older than `snapshot_days`, delete sightings last seen more than `sighting_days`
    ago, and audit entries older than `audit_days` (0 keeps forever)."""
    removed = {"alerts": 0, "snapshots": 0, "audit": 0}
    if alert_days > 0:
        removed["alerts"] = conn.execute(
            "DELETE FROM alerts WHERE created_at < now() - make_interval(secs => %s)",
            (alert_days * 86400,),
        ).rowcount
    if snapshot_days > 0:
        removed["snapshots"] = conn.execute(
            "UPDATE alerts SET snapshot_jpeg = NULL, face_jpeg = NULL"
            " WHERE created_at < now() - make_interval(secs => %s)"
            " AND (snapshot_jpeg IS NOT NULL OR face_jpeg IS NOT NULL)",
            (snapshot_days * 86400,),
        ).rowcount
    removed |= sightings.purge(conn, sighting_days=sighting_days, snapshot_days=snapshot_days)
    if audit_days > 0:
        removed["audit"] = conn.execute(
            "DELETE FROM audit_log WHERE at < now() - make_interval(secs => %s)",
            (audit_days * 86400,),
        ).rowcount
    return removed
