"""Verdicts in, alerts out: Postgres first, then the alerts stream; never twice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support.values import present
from tests.support.verdicts import Published, aggregate, liveness_verdict, recognition_verdict
from watchpost.db import alerts, identities
from watchpost.geometry import Box
from watchpost.images import encode_jpeg
from watchpost.keys import Keys
from watchpost.messages import (
    AlertEvent,
    LivenessState,
    LivenessVerdict,
    RecognitionVerdict,
    decode,
)

FRAME = encode_jpeg(np.full((120, 160, 3), 200, np.uint8))


BOX = Box(left=40, top=30, right=100, bottom=90)


def recognition(
    track: str, identity_id=None, name=None, distance=0.8, **quality
) -> RecognitionVerdict:
    """One check on a sharp, frontal detector box (access needs two of them)."""
    return recognition_verdict(
        track,
        box=BOX,
        captured_at=1_700_000_000.0,
        identity_id=identity_id,
        name=name,
        distance=distance,
        **quality,
    )


def liveness(track: str, state: LivenessState) -> LivenessVerdict:
    return liveness_verdict(track, state, blinks=1 if state == "live" else 0)


def run(env_settings, redis_client, pool, verdicts, **overrides) -> None:
    """The verdicts through one aggregator; each recognition verdict carries FRAME."""
    pairs: list[Published] = [
        (v, FRAME if isinstance(v, RecognitionVerdict) else None) for v in verdicts
    ]
    aggregate(env_settings, redis_client, pool, pairs, **overrides)


def stored(pool) -> list[dict]:
    with pool.connection() as conn:
        return alerts.list_alerts(conn, after_id=0)


def test_unknown_known_and_spoof_tracks(env_settings, redis_client, pool, prefix):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann")["id"]
    run(
        env_settings,
        redis_client,
        pool,
        [
            recognition("stranger"),
            recognition("ann", ann, "Ann", 0.41),
            liveness("ann", "undecided"),
            liveness("ann", "live"),  # one check: no access yet
            recognition("ann", ann, "Ann", 0.45),
            recognition("photo", ann, "Ann", 0.38),
            liveness("photo", "spoof"),
        ],
    )
    rows = stored(pool)
    assert [(r["track_id"], r["kind"]) for r in rows] == [
        ("stranger", "unknown_person"),
        ("ann", "access_granted"),
        ("photo", "spoof_attempt"),
    ]
    granted = rows[1]
    assert granted["identity_id"] == ann and granted["display_name"] == "Ann"
    assert granted["liveness"] == "live" and granted["distance"] == np.float32(0.41)
    with pool.connection() as conn:
        snapshot = alerts.get_snapshot(conn, granted["id"])
    assert present(snapshot)[:2] == b"\xff\xd8" and snapshot != FRAME  # a JPEG with the box drawn
    events = [decode(f, AlertEvent)[0] for _, f in redis_client.xrange(Keys(prefix).alerts)]
    assert [e.alert_id for e in events] == [r["id"] for r in rows]


def test_a_redelivered_verdict_never_duplicates_an_alert(env_settings, redis_client, pool):
    run(env_settings, redis_client, pool, [recognition("t1")])
    # A new aggregator (after a crash) sees the same verdict again.
    run(env_settings, redis_client, pool, [recognition("t1")])
    assert [r["kind"] for r in stored(pool)] == ["unknown_person"]


def test_liveness_before_any_recognition_waits_for_the_snapshot(env_settings, redis_client, pool):
    run(env_settings, redis_client, pool, [liveness("t2", "spoof")])
    assert stored(pool) == []
    run(env_settings, redis_client, pool, [recognition("t2")])
    # A fresh aggregator does not know the earlier spoof verdict; the unknown alert still comes.
    assert [r["kind"] for r in stored(pool)] == ["unknown_person"]


def test_a_deleted_identity_leaves_the_alert_but_not_the_link(env_settings, redis_client, pool):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann")["id"]
    run(
        env_settings,
        redis_client,
        pool,
        [
            recognition("a", ann, "Ann", 0.3),
            recognition("a", ann, "Ann", 0.3),
            liveness("a", "live"),
        ],
    )
    with pool.connection() as conn:
        identities.delete_identity(conn, ann)
    (row,) = stored(pool)
    assert row["kind"] == "access_granted" and row["identity_id"] is None


def test_cooldowns_hold_back_repeats_on_one_camera(env_settings, redis_client, pool):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann")["id"]
    run(
        env_settings,
        redis_client,
        pool,
        [
            recognition("s1"),
            recognition("s2"),  # the same stranger, re-tracked a moment later
            recognition("a1", ann, "Ann", 0.4),
            recognition("a1", ann, "Ann", 0.4),
            liveness("a1", "live"),
            recognition("a2", ann, "Ann", 0.4),
            recognition("a2", ann, "Ann", 0.4),
            liveness("a2", "live"),
        ],
    )
    assert [(r["track_id"], r["kind"]) for r in stored(pool)] == [
        ("s1", "unknown_person"),
        ("a1", "access_granted"),
    ]


def test_no_cooldown_configured_means_every_track_alerts(env_settings, redis_client, pool):
    settings: dict[str, Any] = {"aggregator_cooldowns": {}}
    run(env_settings, redis_client, pool, [recognition("s1"), recognition("s2")], **settings)
    assert [r["track_id"] for r in stored(pool)] == ["s1", "s2"]


def test_a_kiosk_bound_to_a_login_reports_someone_else(env_settings, redis_client, pool):
    from watchpost.db import cameras

    with pool.connection() as conn:
        identities.create_identity(conn, display_name="Ada", login_name="ada")
        bob = identities.create_identity(conn, display_name="Bob")["id"]
        cameras.create_camera(
            conn, camera_id="door", name="Ada's kiosk", source="0", claimed_login="ada"
        )
    run(
        env_settings,
        redis_client,
        pool,
        [recognition("k1", bob, "Bob", 0.3), liveness("k1", "live")],
    )
    (row,) = stored(pool)
    assert (row["kind"], row["claimed_login"], row["display_name"]) == (
        "identity_mismatch",
        "ada",
        "Bob",
    )
    assert "claimed login 'ada'" in row["reason"]


def test_by_default_a_stranger_takes_two_checks_and_the_alert_names_the_vote(
    env_settings, redis_client, pool
):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann")["id"]
    big = Box(left=10, top=10, right=150, bottom=110)  # the best frame of track a1 is unidentified
    verdicts = [
        recognition("s1"),
        recognition("a1", ann, "Ann", 0.4),
        RecognitionVerdict(
            camera_id="door",
            track_id="a1",
            frame_seq=2,
            captured_at=1_700_000_001.0,
            box=big,
            distance=0.7,
            threshold=0.6,
        ),
        recognition("a1", ann, "Ann", 0.45),
        liveness("a1", "live"),
    ]
    run(env_settings, redis_client, pool, verdicts, aggregator_unknown_min_checks=2)
    rows = stored(pool)
    assert [(r["track_id"], r["kind"]) for r in rows] == [
        ("a1", "access_granted")
    ]  # s1: one check only
    assert rows[0]["display_name"] == "Ann" and rows[0]["identity_id"] == ann
    assert rows[0]["distance"] == pytest.approx(0.4)


def test_access_needs_two_quality_checks_from_the_detector(env_settings, redis_client, pool):
    with pool.connection() as conn:
        ann = identities.create_identity(conn, display_name="Ann")["id"]
    run(
        env_settings,
        redis_client,
        pool,
        [
            # A look-alike: one close-enough check, then tracker boxes and a blurred frame.
            recognition("l1", ann, "Ann", 0.55),
            recognition("l1", ann, "Ann", 0.55, detected=False),
            recognition("l1", ann, "Ann", 0.55, sharpness=5.0),
            recognition("l1", ann, "Ann", 0.55, yaw=0.5),
            liveness("l1", "live"),
            # An old verdict without quality fields is no evidence either.
            recognition("l2", ann, "Ann", 0.3, detected=None, sharpness=None, yaw=None),
            recognition("l2", ann, "Ann", 0.3, detected=None, sharpness=None, yaw=None),
            liveness("l2", "live"),
        ],
    )
    assert stored(pool) == []
    good = [recognition("g1", ann, "Ann", 0.4), recognition("g1", ann, "Ann", 0.4)]
    run(
        env_settings,
        redis_client,
        pool,
        [*good, liveness("g1", "live")],
        aggregator_grant_min_checks=3,
    )
    assert stored(pool) == []  # the setting is read: three checks wanted, two given
    good = [recognition("g2", ann, "Ann", 0.4), recognition("g2", ann, "Ann", 0.4)]
    run(env_settings, redis_client, pool, [*good, liveness("g2", "live")])
    assert [(r["track_id"], r["kind"]) for r in stored(pool)] == [("g2", "access_granted")]
