"""Erasing a person from the database: their samples and embeddings, and their name, pictures
and login in past alerts and sightings (the alert rows stay, unnamed)."""

from __future__ import annotations

import re

from watchpost.db import identities
from watchpost.db.pool import Conn, Row

ERASED = "[erased]"


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
