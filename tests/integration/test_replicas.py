"""Several replicas of recognition, liveness and the aggregator on a real video, real models, real
Redis and PostgreSQL: the same alerts as one replica of each, and nothing lost or repeated when a
replica of each dies mid-stream (kill -9 of real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.capture.loop import CaptureLoop
from tests.conftest import require_data
from tests.integration.test_pipeline import enrol_from_video
from tests.support import shards
from tests.support.faults import terminate, wait_until
from tests.support.pipeline import replica_names, run_consumers
from watchpost.db import alerts
from watchpost.keys import Keys, shard_of
from watchpost.leases import rendezvous_order
from watchpost.messages import AlertEvent, Frame, attachments, decode
from watchpost.settings import PROJECT_ROOT, CaptureSettings
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
    return sorted((role[r["camera_id"]], r["track_id"], r["kind"], r["display_name"]) for r in rows)


def published_once(redis_client, keys: Keys, pool, cameras: list[str]) -> None:
    """Every stored alert of these cameras is on the alerts stream exactly once, and no alert
    is stored twice (one row per camera, track and kind)."""
    with pool.connection() as conn:
        rows = [r for r in alerts.list_alerts(conn, limit=1000) if r["camera_id"] in cameras]
    on_stream = [decode(f, AlertEvent)[0].alert_id for _, f in redis_client.xrange(keys.alerts)]
    assert sorted(on_stream) == sorted(r["id"] for r in rows)
    assert len({(r["camera_id"], r["track_id"], r["kind"]) for r in rows}) == len(rows)


def run_in_process(env_settings, redis_client, pool, frames, keys: Keys, replicas: int, tag: str):
    """The frames as two cameras (one on each replica's shards) through `replicas` of each
    service in this process; the alerts' outcome, the run's result and the cameras."""
    cameras = cameras_split_over(replica_names(max(2, replicas)), keys.shards, tag)
    for camera in cameras:
        play(redis_client, keys, frames, camera)
    result = run_consumers(
        env_settings,
        redis_client,
        pool,
        replicas=replicas,
        stream_prefix=keys.prefix,
        # The replicas here drain one after the other: a lease must outlast the later ones'
        # runs, or the last finds the first one's lease and heartbeat expired and takes every
        # shard (seen at load 7, liveness taking over 10 s per replica).
        shard_lease_seconds=600.0,
        **SETTINGS,
    )
    return outcome(pool, cameras), result, cameras


def reference(env_settings, redis_client, pool, prefixes, cache: dict) -> list[tuple]:
    """The clip as two cameras through one replica of each service (once per module)."""
    if "reference" not in cache:
        keys = Keys(prefixes("one"))
        frames = capture_once(env_settings, redis_client, pool, cache)
        one, _, cameras = run_in_process(env_settings, redis_client, pool, frames, keys, 1, "c1")
        published_once(redis_client, keys, pool, cameras)
        cache["reference"] = one
    return cache["reference"]


def test_two_replicas_of_each_service_give_the_alerts_of_one(
    env_settings, redis_client, pool, prefixes, clip_frames
):
    enrol_from_video(pool, require_data(CLIP), "Speaker")
    one = reference(env_settings, redis_client, pool, prefixes, clip_frames)
    frames = capture_once(env_settings, redis_client, pool, clip_frames)
    assert len(frames) > 200
    keys = Keys(prefixes("two"))
    two, result, cameras = run_in_process(env_settings, redis_client, pool, frames, keys, 2, "c2")
    # Each replica owned shards of its own, and each had a camera's frames to handle.
    for service, owners in result["shards"].items():
        assert len(owners) == 2, service
        first, second = owners.values()
        assert first and second and not set(first) & set(second), (service, owners)
    assert two == one
    kinds = {(camera, kind, person) for camera, _, kind, person in one}
    assert {(0, "access_granted", "Speaker"), (1, "access_granted", "Speaker")} <= kinds, one
    published_once(redis_client, keys, pool, cameras)


class Replica:
    """`python -m tests.support.replica SERVICE` under a consumer name of its own."""

    def __init__(self, service: str, name: str, env: dict[str, str], log: Path) -> None:
        self.service, self.name, self.log = service, name, log
        self.env = {**os.environ, **env, "WATCHPOST_CONSUMER_NAME": name}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.replica", self.service],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        return True

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        terminate(self.process)


def progress(redis_client, stream: str, group: str) -> tuple[int, int, int]:
    """(entries the group has had delivered, of them acked, entries in the stream) on a shard."""
    info = {g["name"].decode(): g for g in redis_client.xinfo_groups(stream)}.get(group)
    total = redis_client.xlen(stream)
    if info is None:
        return 0, 0, total
    delivered = len(redis_client.xrange(stream, max=info["last-delivered-id"]))
    return delivered, delivered - info["pending"], total


def drained(redis_client, streams, group: str) -> bool:
    for stream in streams:
        if not redis_client.exists(stream):
            continue
        last = redis_client.xinfo_stream(stream)["last-generated-id"]
        found = {g["name"].decode(): g for g in redis_client.xinfo_groups(stream)}.get(group)
        if found is None or found["pending"] or found["last-delivered-id"] != last:
            return False
    return True


def test_kill_9_of_a_replica_of_each_stateful_service_mid_stream_loses_and_repeats_nothing(
    env_settings, redis_client, pool, prefixes, clip_frames, redis_url, migrated_url, tmp_path
):
    """Liveness and the aggregator, two replicas each as real processes, one of each killed
    with SIGKILL while it has entries of its shard in hand: the other takes the shard over
    after its lease (1.5 s here) and the alerts are those of one replica, each stored and
    published once. (Recognition runs as two replicas in this process.)"""
    enrol_from_video(pool, require_data(CLIP), "Speaker")
    one = reference(env_settings, redis_client, pool, prefixes, clip_frames)
    frames = capture_once(env_settings, redis_client, pool, clip_frames)
    keys = Keys(prefixes("kill"))
    names = replica_names(2)
    cameras = cameras_split_over(names, keys.shards, "ck")
    for camera in cameras:
        play(redis_client, keys, frames, camera)
    overrides = dict(SETTINGS, stream_prefix=keys.prefix)
    recognise(env_settings, redis_client, pool, overrides)
    env = {
        "WATCHPOST_REDIS_URL": redis_url,
        "WATCHPOST_DATABASE_URL": migrated_url,
        "WATCHPOST_STREAM_PREFIX": keys.prefix,
        "WATCHPOST_FRAME_MAX_AGE_SECONDS": "0",
        "WATCHPOST_SHARD_LEASE_SECONDS": "1.5",
        "WATCHPOST_AGGREGATOR_TRAVEL_MIN_CHECKS": str(SETTINGS["aggregator_travel_min_checks"]),
        "WATCHPOST_LOG_LEVEL": "INFO",
    }
    mid_stream = {
        service: kill_one_mid_stream(
            redis_client, keys, service, streams, cameras[0], env, tmp_path
        )
        for service, streams in (("liveness", keys.frames), ("aggregator", keys.verdicts))
    }
    print(f"\nkill -9 mid-stream (entries delivered, acked, of the shard's): {mid_stream}")
    delivered, acked, total = mid_stream["liveness"]
    assert acked > 0 and delivered < total  # state to rebuild, and entries still to come
    assert outcome(pool, cameras) == one
    published_once(redis_client, keys, pool, cameras)


def kill_one_mid_stream(
    redis_client, keys: Keys, service: str, streams, camera: str, env: dict, logs: Path
) -> tuple[int, int, int]:
    """Two replicas of `service` as processes, started together; the one that owns `camera`'s
    shard killed with SIGKILL once it has had entries of it delivered; the other takes the
    shard over. (Entries delivered and acked at the kill, entries of the shard.)"""
    group = service
    gate = [keys.shard_lease(service, str(n)) for n in range(keys.shards)]
    for lease in gate:  # held until both replicas are up, so they share the shards
        redis_client.set(lease, "gate", ex=300)
    replicas = [Replica(service, n, env, logs / f"{service}-{n}.log") for n in replica_names(2)]

    def both_up() -> bool:
        alive = all(r.alive() for r in replicas)
        return alive and redis_client.zcard(keys.shard_nodes(service)) == 2

    try:
        for replica in replicas:
            replica.start()
        wait_until(both_up, 240, f"both {service} replicas to start")
        redis_client.delete(*gate)
        shard = streams.of(camera)
        lease = keys.shard_lease(service, str(shard.shard))
        holder = wait_until(lambda: redis_client.get(lease), 30, "the shard to be taken")
        victim = next(r for r in replicas if r.name.encode() == holder)

        # Killed with entries handled (the state to rebuild) and entries in hand (to claim).
        def under_way() -> bool:
            done, acked, total = progress(redis_client, shard, group)
            return acked >= max(1, total // 3) or done == total

        wait_until(under_way, 120, f"{service} to be under way", 0.005)
        at_kill = progress(redis_client, shard, group)
        victim.kill9()
        survivor = next(r for r in replicas if r is not victim)
        # The dead replica's lease runs out (its TTL) and the survivor takes the shard over: only
        # then is the shard's stream sure to be drained by someone (it may have been already, if
        # the victim had handled everything before it died).
        wait_until(
            lambda: redis_client.get(lease) == survivor.name.encode(),
            60,
            f"the surviving {service} replica to take shard {shard.shard} over",
        )
        wait_until(lambda: drained(redis_client, streams, group), 180, f"{service} to drain")
        took = [
            line.split(": ", 1)[-1]
            for line in survivor.log.read_text().splitlines()
            if f"took shard {shard.shard} " in line
        ][-1]
        print(f"\n{service}: killed {victim.name} with {at_kill} entries delivered; {took}")
        return at_kill
    finally:
        for replica in replicas:
            replica.stop()


def recognise(env_settings, redis_client, pool, overrides: dict) -> None:
    """Two recognition replicas in this process, until the frames are drained."""
    from services.recognition.stream import FrameRecognizer, GalleryHolder
    from tests.support.pipeline import run_replicas
    from watchpost.consumers import stream_worker
    from watchpost.keys import Group
    from watchpost.settings import RecognitionSettings

    workers = []
    for name in replica_names(2):
        settings = env_settings(RecognitionSettings, consumer_name=name, **overrides)
        holder = GalleryHolder(pool, redis_client, settings.keys, k=settings.recognition_score_k)
        recognizer = FrameRecognizer(settings, redis_client=redis_client, gallery=holder)
        workers.append(
            stream_worker(
                settings,
                redis_client,
                settings.keys.frames,
                group=Group.RECOGNITION,
                handle=recognizer.handle,
                state=recognizer,
            )
        )
    run_replicas(workers)
