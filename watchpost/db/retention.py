"""The retention job: alerts, their pictures, sightings and audit entries past their age."""

from __future__ import annotations

from watchpost.db import sightings
from watchpost.db.pool import Conn


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
