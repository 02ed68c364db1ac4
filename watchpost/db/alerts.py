"""Alerts: written once per natural key (camera, track, kind), read by the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from watchpost.db.erasure import without_names
from watchpost.db.pool import Conn, Row, one
from watchpost.messages import AlertEvent, AlertKind

ALERT_COLUMNS = (
    "id, kind, camera_id, track_id, identity_id, display_name, claimed_login, distance,"
    " liveness, reason, details, captured_at, created_at, acknowledged_at, acknowledged_by,"
    " snapshot_jpeg IS NOT NULL AS has_snapshot, face_jpeg IS NOT NULL AS has_face"
)


def upsert_alert(
    conn: Conn,
    *,
    kind: AlertKind,
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
) -> tuple[Row, bool]:
    """Insert the alert unless its natural key exists; return (row, created_now).

    A decision can name a person erased a moment ago (recognition's gallery and the
    aggregator's evidence lag the erasure by a little): the alert is kept, without the link,
    the name, or the name in its reason."""
    row = conn.execute(
        "WITH person AS (SELECT id FROM identities WHERE id = %(identity)s),"
        " gone AS (SELECT %(identity)s::bigint IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM person) AS erased)"
        " INSERT INTO alerts (kind, camera_id, track_id, identity_id, display_name, claimed_login,"
        " distance, liveness, reason, details, snapshot_jpeg, face_jpeg, captured_at)"
        " SELECT %(kind)s, %(camera)s, %(track)s, (SELECT id FROM person),"
        " CASE WHEN gone.erased THEN NULL ELSE %(name)s END, %(claimed)s, %(distance)s,"
        " %(liveness)s, CASE WHEN gone.erased THEN %(reason_erased)s ELSE %(reason)s END,"
        " %(details)s, %(snapshot)s, %(face)s, %(captured)s FROM gone"
        " ON CONFLICT (camera_id, track_id, kind) DO NOTHING"
        f" RETURNING {ALERT_COLUMNS}",
        {
            "kind": kind,
            "camera": camera_id,
            "track": track_id,
            "identity": identity_id,
            "name": display_name,
            "claimed": claimed_login,
            "distance": distance,
            "liveness": liveness,
            "reason": reason,
            "reason_erased": without_names(reason, [display_name] if display_name else []),
            "details": Jsonb(details or {}),
            "snapshot": snapshot_jpeg,
            "face": face_jpeg,
            "captured": datetime.fromtimestamp(captured_at, UTC),
        },
    ).fetchone()
    if row is not None:
        return row, True
    # The conflicting row is committed (ON CONFLICT waited for it), so this statement sees it.
    existing = one(
        conn.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts"
            " WHERE camera_id = %s AND track_id = %s AND kind = %s",
            (camera_id, track_id, kind),
        )
    )
    return existing, False


def get_alert(conn: Conn, alert_id: int) -> Row | None:
    return conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,)).fetchone()


def _filters(
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    kind: AlertKind | None = None,
    camera_id: str | None = None,
    identity_id: int | None = None,
    acknowledged: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("id > %s", after_id),
        ("id < %s", before_id),
        ("kind = %s", kind),
        ("camera_id = %s", camera_id),
        ("identity_id = %s", identity_id),
        ("created_at >= %s", since),
        ("created_at < %s", until),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if acknowledged is not None:
        where.append("acknowledged_at IS NOT NULL" if acknowledged else "acknowledged_at IS NULL")
    return (" WHERE " + " AND ".join(where)) if where else "", params


def list_alerts(conn: Conn, *, limit: int = 50, **filters: Any) -> list[Row]:
    """Newest first, keyset-paged by id (`before_id`); `after_id` returns oldest first instead,
    which is what a websocket client catching up after a reconnect wants. Filters: kind,
    camera_id, identity_id, acknowledged, since/until (created_at)."""
    where, params = _filters(**filters)
    order = " ORDER BY id ASC" if filters.get("after_id") is not None else " ORDER BY id DESC"
    return conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts{where}{order} LIMIT %s", (*params, limit)
    ).fetchall()


def acknowledge(conn: Conn, alert_id: int, *, by: str) -> Row | None:
    """Mark the alert seen by `by`; the first acknowledgement stands. None if no such alert."""
    conn.execute(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s"
        " WHERE id = %s AND acknowledged_at IS NULL",
        (by, alert_id),
    )
    return get_alert(conn, alert_id)


def counts_per_hour(conn: Conn, *, since: datetime, until: datetime | None = None) -> list[Row]:
    """Alerts per kind and hour (UTC) in the range, for the page's chart."""
    where, params = _filters(since=since, until=until)
    return conn.execute(
        "SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, kind, count(*) AS count"
        f" FROM alerts{where} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    ).fetchall()


def get_snapshot(conn: Conn, alert_id: int) -> bytes | None:
    row = conn.execute("SELECT snapshot_jpeg FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    return None if row is None else row["snapshot_jpeg"]


def get_face(conn: Conn, alert_id: int) -> bytes | None:
    """The raw face crop of the alert (no box drawn), for enrolling the person from it."""
    row = conn.execute("SELECT face_jpeg FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    return None if row is None else row["face_jpeg"]


def alert_from_row(row: Row) -> AlertEvent:
    """The public alert of a stored one (a row of ALERT_COLUMNS): what the REST API answers and
    the alerts stream carries, with the URLs of its pictures."""
    alert = AlertEvent.model_validate(row)
    return alert.model_copy(
        update={
            "snapshot_url": f"/api/v1/alerts/{alert.id}/snapshot" if alert.has_snapshot else None,
            "face_url": f"/api/v1/alerts/{alert.id}/face" if alert.has_face else None,
        }
    )
