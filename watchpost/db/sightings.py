"""Sightings (who was seen where and when, one per track) and groups of unknown faces."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from watchpost.db.pool import Conn, Row, one

SIGHTING_COLUMNS = (
    "s.id, s.camera_id, s.track_id, s.identity_id, i.display_name, s.group_id, s.first_seen,"
    " s.last_seen, s.checks, s.votes, s.best_distance, s.liveness, s.ended, s.face_width,"
    " s.quality, s.box, s.snapshot_jpeg IS NOT NULL AS has_snapshot,"
    " s.face_jpeg IS NOT NULL AS has_face, s.created_at, s.updated_at"
)
_FROM = " FROM sightings s LEFT JOIN identities i ON i.id = s.identity_id"
_GROUP_LOCK = 0x5750_4752  # "WPGR": one grouping at a time across aggregator replicas


def _ts(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def upsert_sighting(
    conn: Conn,
    *,
    camera_id: str,
    track_id: str,
    identity_id: int | None,
    first_seen: float,
    last_seen: float,
    checks: int,
    votes: int,
    best_distance: float | None,
    liveness: str,
    ended: bool = False,
    face_width: int | None = None,
    quality: float | None = None,
    box: tuple[int, int, int, int] | None = None,
    snapshot_jpeg: bytes | None = None,
    face_jpeg: bytes | None = None,
    embedding: np.ndarray | None = None,
) -> Row | None:
    """Create or update the sighting of (camera, track). Images are replaced only when given
    (a better face was seen); times only widen. Returns the row, or None (nothing written, an
    existing row deleted) when `identity_id` names a person erased meanwhile: a record of an
    erased person must not be re-created from verdicts still in flight."""
    if identity_id is not None:
        alive = conn.execute(
            "SELECT 1 FROM identities WHERE id = %s FOR SHARE", (identity_id,)
        ).fetchone()
        if alive is None:
            conn.execute(
                "DELETE FROM sightings WHERE camera_id = %s AND track_id = %s",
                (camera_id, track_id),
            )
            return None
    vector = None if embedding is None else [float(x) for x in embedding]
    cursor = conn.execute(
        "INSERT INTO sightings (camera_id, track_id, identity_id, first_seen, last_seen, checks,"
        " votes, best_distance, liveness, ended, face_width, quality, box, snapshot_jpeg,"
        " face_jpeg, embedding)"
        " VALUES (%(camera)s, %(track)s, %(identity)s, %(first)s, %(last)s, %(checks)s,"
        " %(votes)s, %(distance)s, %(liveness)s, %(ended)s, %(width)s, %(quality)s, %(box)s,"
        " %(snapshot)s, %(face)s, %(embedding)s)"
        " ON CONFLICT (camera_id, track_id) DO UPDATE SET"
        # A face whose group was named while its track lasted stays that person's.
        " identity_id = COALESCE(EXCLUDED.identity_id, (SELECT g.named_identity_id"
        " FROM unknown_groups g WHERE g.id = sightings.group_id)),"
        " group_id = CASE WHEN EXCLUDED.identity_id IS NULL OR EXCLUDED.identity_id ="
        " (SELECT g.named_identity_id FROM unknown_groups g WHERE g.id = sightings.group_id)"
        " THEN sightings.group_id END,"
        " first_seen = LEAST(sightings.first_seen, EXCLUDED.first_seen),"
        " last_seen = GREATEST(sightings.last_seen, EXCLUDED.last_seen),"
        " checks = EXCLUDED.checks, votes = EXCLUDED.votes,"
        " best_distance = EXCLUDED.best_distance, liveness = EXCLUDED.liveness,"
        " ended = sightings.ended OR EXCLUDED.ended,"
        " face_width = COALESCE(EXCLUDED.face_width, sightings.face_width),"
        " quality = COALESCE(EXCLUDED.quality, sightings.quality),"
        " box = COALESCE(EXCLUDED.box, sightings.box),"
        " snapshot_jpeg = COALESCE(EXCLUDED.snapshot_jpeg, sightings.snapshot_jpeg),"
        " face_jpeg = COALESCE(EXCLUDED.face_jpeg, sightings.face_jpeg),"
        " embedding = CASE WHEN EXCLUDED.identity_id IS NULL"
        " THEN COALESCE(EXCLUDED.embedding, sightings.embedding) END, updated_at = now()"
        " RETURNING id",
        {
            "camera": camera_id,
            "track": track_id,
            "identity": identity_id,
            "first": _ts(first_seen),
            "last": _ts(last_seen),
            "checks": checks,
            "votes": votes,
            "distance": best_distance,
            "liveness": liveness,
            "ended": ended,
            "width": face_width,
            "quality": quality,
            "box": None if box is None else list(box),
            "snapshot": snapshot_jpeg,
            "face": face_jpeg,
            "embedding": vector,
        },
    )
    return get_sighting(conn, one(cursor)["id"])


def get_sighting(conn: Conn, sighting_id: int) -> Row | None:
    return conn.execute(
        f"SELECT {SIGHTING_COLUMNS}{_FROM} WHERE s.id = %s", (sighting_id,)
    ).fetchone()


def list_sightings(
    conn: Conn,
    *,
    identity_id: int | None = None,
    camera_id: str | None = None,
    group_id: int | None = None,
    known: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Row]:
    """Newest first (by id), keyset-paged with `before_id`. `since`/`until` keep sightings
    that overlap the range: last seen at or after `since`, first seen before `until`."""
    where, params = [], []
    for clause, value in (
        ("s.identity_id = %s", identity_id),
        ("s.camera_id = %s", camera_id),
        ("s.group_id = %s", group_id),
        ("s.last_seen >= %s", since),
        ("s.first_seen < %s", until),
        ("s.id < %s", before_id),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if known is not None:
        where.append("s.identity_id IS NOT NULL" if known else "s.identity_id IS NULL")
    sql_where = (" WHERE " + " AND ".join(where)) if where else ""
    return conn.execute(
        f"SELECT {SIGHTING_COLUMNS}{_FROM}{sql_where} ORDER BY s.id DESC LIMIT %s",
        (*params, limit),
    ).fetchall()


def get_snapshot(conn: Conn, sighting_id: int) -> bytes | None:
    row = conn.execute(
        "SELECT snapshot_jpeg FROM sightings WHERE id = %s", (sighting_id,)
    ).fetchone()
    return None if row is None else row["snapshot_jpeg"]


def get_face(conn: Conn, sighting_id: int) -> bytes | None:
    row = conn.execute("SELECT face_jpeg FROM sightings WHERE id = %s", (sighting_id,)).fetchone()
    return None if row is None else row["face_jpeg"]


def near_in_time(
    conn: Conn,
    *,
    identity_id: int,
    other_than_camera: str,
    since: float,
    until: float,
) -> list[Row]:
    """Sightings of the person on other cameras that overlap [since, until]."""
    return conn.execute(
        f"SELECT {SIGHTING_COLUMNS}{_FROM} WHERE s.identity_id = %s AND s.camera_id <> %s"
        " AND s.last_seen >= %s AND s.first_seen <= %s ORDER BY s.id",
        (identity_id, other_than_camera, _ts(since), _ts(until)),
    ).fetchall()


def unfinished(conn: Conn, *, idle_seconds: float, limit: int = 500) -> list[Row]:
    """Sightings not ended whose row has not changed for `idle_seconds`: their aggregator
    stopped (or crashed) before the track's end."""
    return conn.execute(
        "SELECT id, identity_id, votes, embedding FROM sightings WHERE NOT ended"
        " AND updated_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s",
        (idle_seconds, limit),
    ).fetchall()


def mark_ended(conn: Conn, sighting_id: int) -> None:
    conn.execute(
        "UPDATE sightings SET ended = true, updated_at = now() WHERE id = %s", (sighting_id,)
    )


def recent(conn: Conn, *, seconds: float, limit: int = 1000) -> list[Row]:
    """Sightings last seen within `seconds` (newest first), for the MQTT bridge's poll."""
    return conn.execute(
        f"SELECT {SIGHTING_COLUMNS}{_FROM} WHERE s.last_seen >= now() - make_interval(secs => %s)"
        " ORDER BY s.last_seen DESC, s.id DESC LIMIT %s",
        (seconds, limit),
    ).fetchall()


def latest_per_camera(conn: Conn, camera_ids: list[str] | None = None) -> dict[str, Row]:
    """Each camera's (or each of `camera_ids`') most recently seen sighting; cameras without
    one are left out. It walks the last-seen index back until each camera's newest: cheap for
    cameras seen lately, a scan of the index for one never seen (the MQTT bridge asks at
    start, then only when a camera's last sighting was deleted)."""
    where, params = ("", ()) if camera_ids is None else (" WHERE c.id = ANY(%s)", (camera_ids,))
    rows = conn.execute(
        f"SELECT c.id AS at_camera, l.* FROM cameras c CROSS JOIN LATERAL ("
        f"SELECT {SIGHTING_COLUMNS}{_FROM} WHERE s.camera_id = c.id"
        f" ORDER BY s.last_seen DESC, s.id DESC LIMIT 1) l{where}",
        params,
    ).fetchall()
    return {row.pop("at_camera"): row for row in rows}


def existing(conn: Conn, sighting_ids: list[int]) -> set[int]:
    """Which of these sightings still exist (not erased, not purged)."""
    rows = conn.execute("SELECT id FROM sightings WHERE id = ANY(%s)", (sighting_ids,))
    return {row["id"] for row in rows.fetchall()}


# -- unknown groups ---------------------------------------------------------------------------
def assign_group(
    conn: Conn, sighting_id: int, embedding: np.ndarray, *, max_distance: float
) -> int:
    """Put an unknown sighting into the unnamed group of its nearest unknown face within
    `max_distance` (Euclidean, on the tracks' mean embeddings), or into a new group of its own.
    Returns the group id; a sighting already in a group stays there."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_GROUP_LOCK,))
    current = conn.execute(
        "SELECT group_id FROM sightings WHERE id = %s", (sighting_id,)
    ).fetchone()
    if current is not None and current["group_id"] is not None:
        return int(current["group_id"])
    members = conn.execute(
        "SELECT s.group_id, s.embedding FROM sightings s JOIN unknown_groups g"
        " ON g.id = s.group_id WHERE g.named_identity_id IS NULL AND s.identity_id IS NULL"
        " AND s.embedding IS NOT NULL AND s.id <> %s",
        (sighting_id,),
    ).fetchall()
    group_id: int | None = None
    if members:
        matrix = np.array([m["embedding"] for m in members], dtype=np.float32)
        distances = np.linalg.norm(matrix - np.asarray(embedding, np.float32), axis=1)
        nearest = int(np.argmin(distances))
        if distances[nearest] <= max_distance:
            group_id = int(members[nearest]["group_id"])
    if group_id is None:
        group_id = int(
            one(conn.execute("INSERT INTO unknown_groups DEFAULT VALUES RETURNING id"))["id"]
        )
    conn.execute("UPDATE sightings SET group_id = %s WHERE id = %s", (group_id, sighting_id))
    return group_id


class GroupNamedError(ValueError):
    """A named group cannot merge: its faces are someone's, enrolled through the checks."""


def merge_groups(conn: Conn, into_id: int, from_ids: list[int]) -> int:
    """Move every sighting of the groups `from_ids` into group `into_id` and delete those
    groups: one stranger seen on several tracks that started a group each. Only unnamed groups
    merge (naming enrols faces through the enrolment checks; a merge must not bypass them).
    Returns how many sightings moved. Raises LookupError for a group that does not exist,
    GroupNamedError for a named one, ValueError for a group merged into itself."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_GROUP_LOCK,))
    wanted = [into_id, *from_ids]
    if into_id in from_ids or len(set(from_ids)) != len(from_ids):
        raise ValueError(f"group {into_id} cannot be merged into itself")
    rows = conn.execute(
        "SELECT id, named_identity_id FROM unknown_groups WHERE id = ANY(%s) FOR UPDATE",
        (wanted,),
    ).fetchall()
    found = {r["id"]: r for r in rows}
    if missing := [g for g in wanted if g not in found]:
        raise LookupError(f"unknown group {missing[0]} not found")
    if named := [g for g in wanted if found[g]["named_identity_id"] is not None]:
        raise GroupNamedError(
            f"unknown group {named[0]} is already named (identity "
            f"{found[named[0]]['named_identity_id']}): only unnamed groups merge"
        )
    moved = conn.execute(
        "UPDATE sightings SET group_id = %s, updated_at = now() WHERE group_id = ANY(%s)",
        (into_id, from_ids),
    ).rowcount
    conn.execute("DELETE FROM unknown_groups WHERE id = ANY(%s)", (from_ids,))
    return moved


def group_centroids(conn: Conn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unnamed group's id, centroid (the mean of its unknown sightings' embeddings) and
    sighting count, by id."""
    rows = conn.execute(
        "SELECT s.group_id, s.embedding FROM sightings s JOIN unknown_groups g"
        " ON g.id = s.group_id WHERE g.named_identity_id IS NULL AND s.identity_id IS NULL"
        " AND s.embedding IS NOT NULL ORDER BY s.group_id, s.id"
    ).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 128), np.float32), np.zeros(0, np.int64)
    group_of = np.array([r["group_id"] for r in rows], np.int64)
    vectors = np.array([r["embedding"] for r in rows], np.float32)
    ids, index, counts = np.unique(group_of, return_inverse=True, return_counts=True)
    sums = np.zeros((len(ids), vectors.shape[1]), np.float64)
    np.add.at(sums, index, vectors)
    return ids, (sums / counts[:, None]).astype(np.float32), counts


def merge_close_groups(conn: Conn, *, max_distance: float) -> list[tuple[int, list[int]]]:
    """Housekeeping: merge unnamed groups whose centroids are within `max_distance` (the group
    threshold), closest pair first, the merged group's centroid recomputed (weighted by
    sightings) before the next pair, until no two are that close. The older group (lower id)
    keeps its id. Returns (kept group, groups merged into it) for each group that grew."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_GROUP_LOCK,))
    ids, centroids, counts = group_centroids(conn)
    if len(ids) < 2:
        return []
    centroids = centroids.astype(np.float64)
    weights = counts.astype(np.float64)
    alive = np.ones(len(ids), bool)
    distances = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    absorbed: dict[int, list[int]] = {}
    while True:
        flat = int(np.argmin(distances))
        a, b = divmod(flat, len(ids))
        if not distances[a, b] <= max_distance:
            break
        keep, gone = (a, b) if ids[a] < ids[b] else (b, a)
        total = weights[keep] + weights[gone]
        centroids[keep] = (
            centroids[keep] * weights[keep] + centroids[gone] * weights[gone]
        ) / total
        weights[keep] = total
        alive[gone] = False
        distances[gone, :] = distances[:, gone] = np.inf
        row = np.linalg.norm(centroids - centroids[keep], axis=1)
        row[~alive] = np.inf
        row[keep] = np.inf
        distances[keep, :] = distances[:, keep] = row
        absorbed.setdefault(int(ids[keep]), []).extend(
            [int(ids[gone]), *absorbed.pop(int(ids[gone]), [])]
        )
    merged = []
    for keep_id, gone_ids in sorted(absorbed.items()):
        merge_groups(conn, keep_id, sorted(gone_ids))
        merged.append((keep_id, sorted(gone_ids)))
    return merged


_GROUP_COLUMNS = (
    "g.id, g.named_identity_id, g.named_at, g.created_at,"
    " count(s.id) AS sightings, count(s.face_jpeg) AS faces,"
    " min(s.first_seen) AS first_seen, max(s.last_seen) AS last_seen,"
    " coalesce(array_agg(DISTINCT s.camera_id) FILTER (WHERE s.id IS NOT NULL), '{}')"
    " AS cameras,"
    " (array_agg(s.id ORDER BY s.quality DESC NULLS LAST)"
    " FILTER (WHERE s.face_jpeg IS NOT NULL))[1]"
    " AS best_sighting_id"
)


def list_groups(
    conn: Conn,
    *,
    named: bool | None = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Row]:
    """Groups newest first; by default only those not named yet, and only groups that still
    have sightings."""
    where, params = ["TRUE"], []
    if named is not None:
        where.append("g.named_identity_id IS NOT NULL" if named else "g.named_identity_id IS NULL")
    if before_id is not None:
        where.append("g.id < %s")
        params.append(before_id)
    return conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM unknown_groups g LEFT JOIN sightings s"
        f" ON s.group_id = g.id WHERE {' AND '.join(where)} GROUP BY g.id"
        " HAVING count(s.id) > 0 ORDER BY g.id DESC LIMIT %s",
        (*params, limit),
    ).fetchall()


def get_group(conn: Conn, group_id: int, *, lock: bool = False) -> Row | None:
    if lock:
        conn.execute("SELECT id FROM unknown_groups WHERE id = %s FOR UPDATE", (group_id,))
    return conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM unknown_groups g LEFT JOIN sightings s"
        " ON s.group_id = g.id WHERE g.id = %s GROUP BY g.id",
        (group_id,),
    ).fetchone()


def group_faces(conn: Conn, group_id: int) -> list[Row]:
    """The face crops of the group's sightings, best first."""
    return conn.execute(
        "SELECT id, face_jpeg FROM sightings WHERE group_id = %s AND face_jpeg IS NOT NULL"
        " ORDER BY quality DESC NULLS LAST, id",
        (group_id,),
    ).fetchall()


def name_group(conn: Conn, group_id: int, identity_id: int) -> int:
    """Mark the group named as `identity_id`; its sightings become that person's. Returns how
    many sightings changed hands."""
    conn.execute(
        "UPDATE unknown_groups SET named_identity_id = %s, named_at = now() WHERE id = %s",
        (identity_id, group_id),
    )
    return conn.execute(
        "UPDATE sightings SET identity_id = %s, embedding = NULL, updated_at = now()"
        " WHERE group_id = %s",
        (identity_id, group_id),
    ).rowcount


def purge(conn: Conn, *, sighting_days: float, snapshot_days: float) -> dict[str, int]:
    """Retention: delete sightings last seen more than `sighting_days` ago, drop the images of
    those older than `snapshot_days` (0 keeps), and unnamed groups left without sightings."""
    removed = {"sightings": 0, "sighting_snapshots": 0, "unknown_groups": 0}
    if sighting_days > 0:
        removed["sightings"] = conn.execute(
            "DELETE FROM sightings WHERE last_seen < now() - make_interval(secs => %s)",
            (sighting_days * 86400,),
        ).rowcount
    if snapshot_days > 0:
        removed["sighting_snapshots"] = conn.execute(
            "UPDATE sightings SET snapshot_jpeg = NULL, face_jpeg = NULL"
            " WHERE last_seen < now() - make_interval(secs => %s)"
            " AND (snapshot_jpeg IS NOT NULL OR face_jpeg IS NOT NULL)",
            (snapshot_days * 86400,),
        ).rowcount
    removed["unknown_groups"] = conn.execute(
        "DELETE FROM unknown_groups g WHERE g.named_identity_id IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.group_id = g.id)"
        " AND g.created_at < now() - interval '1 hour'"
    ).rowcount
    return removed


def details(row: dict[str, Any]) -> dict[str, Any]:
    """What an alert about this sighting records of it."""
    return {
        "sighting_id": row["id"],
        "camera_id": row["camera_id"],
        "track_id": row["track_id"],
        "first_seen": row["first_seen"].timestamp(),
        "last_seen": row["last_seen"].timestamp(),
        "liveness": row["liveness"],
    }
