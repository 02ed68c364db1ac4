"""What erasing a person removes from Redis. PostgreSQL's part (face samples, embeddings, their
name and images in past alerts) is `watchpost.db.erasure.erase_identity`; this is the rest of what
the pipeline holds about them, all short-lived but not short enough to wait for:

- recognition verdicts that matched them (each carries the frame it embedded, and their name),
- alert events of the alerts that were scrubbed (names, reasons),
- dead letters of either,
- track labels that name them (drawn on the live view),
- live-view frames, which may have their name drawn on them (capture redraws them at once).

Frames in `wp:frames:<shard>` are not matched to anyone; they are bounded to a few hundred entries
and by age (`retention_stream_seconds`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, cast

import redis

from watchpost.keys import Keys
from watchpost.streams import delete_entries


def forget_person(
    client: redis.Redis,
    keys: Keys,
    *,
    identity_id: int,
    alert_ids: Collection[int],
    names: Collection[str],
) -> dict[str, int]:
    """Delete what Redis holds about the person; returns how many of each were removed."""
    alert_ids = set(alert_ids)

    def about_them(fields: dict[bytes, bytes]) -> bool:
        data = _data(fields)
        return (
            data.get("identity_id") == identity_id
            or (data.get("id") or data.get("alert_id")) in alert_ids
        )  # v2, v1

    removed = {
        "verdicts": sum(delete_entries(client, shard, about_them) for shard in keys.verdicts),
        "alert_events": delete_entries(client, keys.alerts, about_them),
        "dead_letters": delete_entries(client, keys.dead_letter, about_them),
        "labels": 0,
        "live_frames": 0,
    }
    for key in client.scan_iter(match=keys.every_track_label, count=500):
        raw = client.get(key)
        if raw is not None and _json(cast(bytes, raw)).get("name") in names:
            removed["labels"] += client.delete(key)
    live = list(client.scan_iter(match=keys.every_live_frame, count=500))
    if live:
        removed["live_frames"] = client.delete(*live)
    return removed


def _data(fields: dict[bytes, bytes]) -> dict[str, Any]:
    return _json(fields.get(b"data", b"{}"))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
