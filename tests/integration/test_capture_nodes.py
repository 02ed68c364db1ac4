"""Several capture nodes share the cameras through leases in the real Redis: each camera runs on
exactly one node, nodes split them fairly, and a node that stops or dies hands its cameras on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from services.capture.leases import CameraLeases
from services.capture.supervisor import CaptureSupervisor
from tests.conftest import require_data
from tests.support.waiting import eventually
from watchpost.db import cameras
from watchpost.keys import Keys
from watchpost.settings import CaptureSettings

CAMERAS = ["door", "lobby", "yard", "dock"]


def test_a_lease_has_one_holder_until_it_is_given_back_or_expires(redis_client, prefix):
    keys = Keys(prefix)
    a = CameraLeases(redis_client, keys, "node-a", ttl_seconds=0.5)
    b = CameraLeases(redis_client, keys, "node-b", ttl_seconds=0.5)
    assert a.take("door") and not b.take("door")
    assert a.renew(["door"]) == {"door"} and b.renew(["door"]) == set()
    a.release("door")
    assert b.take("door") and a.holders(["door", "yard"]) == {"door": "node-b", "yard": None}
    b.release("yard")  # not ours: nothing happens
    assert eventually(lambda: a.take("door"), timeout=3)  # b stopped renewing: it expired
    assert b.renew(["door"]) == set()


def test_a_node_re_takes_its_own_expired_lease_when_no_one_else_did(redis_client, prefix):
    """Redis went away for longer than a lease: the node kept running; it keeps the camera."""
    a = CameraLeases(redis_client, Keys(prefix), "node-a", ttl_seconds=0.2)
    assert a.take("door")
    time.sleep(0.4)
    assert a.holders(["door"]) == {"door": None}
    assert a.renew(["door"]) == {"door"}


def test_nodes_that_stop_beating_are_forgotten(redis_client, prefix):
    keys = Keys(prefix)
    a = CameraLeases(redis_client, keys, "node-a", ttl_seconds=0.3)
    b = CameraLeases(redis_client, keys, "node-b", ttl_seconds=0.3)
    assert a.heartbeat() == 1 and b.heartbeat() == 2
    time.sleep(0.5)
    assert a.heartbeat() == 1
    a.leave()
    assert b.heartbeat() == 1


@pytest.fixture
def four_cameras(pool, redis_client, prefix) -> list[str]:
    video = str(require_data("video/two_people_1080p.mp4"))
    with pool.connection() as conn:
        for camera in CAMERAS:
            cameras.create_camera(conn, camera_id=camera, name=camera, source=video)
    redis_client.incr(Keys(prefix).cameras_version)
    return CAMERAS


@contextmanager
def node(env_settings, redis_client, pool, name: str) -> Iterator[CaptureSupervisor]:
    settings = env_settings(
        CaptureSettings,
        consumer_name=name,
        capture_loop=True,
        capture_cameras_check_seconds=0.2,
        capture_lease_seconds=3.0,  # a check can take a while on two loaded cores
        capture_detect_every=25,  # four cameras on two cores: keep detection cheap
    )
    supervisor = CaptureSupervisor(
        settings, redis_client=redis_client, pool=pool, default_source=None
    )
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), name=f"node-{name}")
    thread.start()
    try:
        yield supervisor
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive() and supervisor.running == {}


def held(*nodes: CaptureSupervisor) -> list[set[str]]:
    return [set(n.running) for n in nodes]


@pytest.mark.data
def test_two_nodes_split_the_cameras_and_one_takes_over_when_the_other_stops(
    env_settings, redis_client, pool, prefix, four_cameras
):
    leases = CameraLeases(redis_client, Keys(prefix), "observer", ttl_seconds=1)
    with node(env_settings, redis_client, pool, "a") as a:
        assert eventually(lambda: len(a.running) == 4)
        with node(env_settings, redis_client, pool, "b") as b:
            # b joins: a gives back beyond its share of two, b takes what is free
            assert eventually(lambda: [len(s) for s in held(a, b)] == [2, 2]), held(a, b)
            assert not set(a.running) & set(b.running)
            holders = leases.holders(four_cameras)
            assert {c: holders[c] for c in a.running} == dict.fromkeys(a.running, "a")
            assert {c: holders[c] for c in b.running} == dict.fromkeys(b.running, "b")
            assert all(s["node"] == "b" for s in b.statuses())
        # b stopped: it gave its leases back and left, so a runs every camera again
        assert eventually(lambda: len(a.running) == 4), held(a)
        assert set(leases.holders(four_cameras).values()) == {"a"}


@pytest.mark.data
def test_the_cameras_of_a_node_that_died_move_on_after_its_lease(
    env_settings, redis_client, pool, prefix, four_cameras
):
    keys = Keys(prefix)
    ghost = CameraLeases(redis_client, keys, "ghost", ttl_seconds=2.0)
    assert ghost.take("door") and ghost.take("lobby")

    def ghost_lives_and_a_has_its_share() -> bool:
        ghost.heartbeat()
        assert ghost.renew(["door", "lobby"]) == {"door", "lobby"}
        return set(a.running) == {"yard", "dock"}

    with node(env_settings, redis_client, pool, "a") as a:
        assert eventually(ghost_lives_and_a_has_its_share)  # its share of two, the free ones
        # the ghost dies without a word: its beat and its leases run out, and a takes over
        assert eventually(lambda: len(a.running) == 4), held(a)
        observer = CameraLeases(redis_client, keys, "observer", ttl_seconds=1)
        assert set(observer.holders(four_cameras).values()) == {"a"}


@pytest.mark.slow
@pytest.mark.data
def test_the_capture_nodes_benchmark_prints_its_figures_as_json(redis_url):
    """The benchmark runs (two cameras, one and two processes) so it cannot rot; its figures
    are not asserted beyond their shape."""
    import json
    import os
    import subprocess
    import sys

    from watchpost.settings import PROJECT_ROOT

    clip = require_data("video/two_people_1080p.mp4")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.capture_nodes", "--cameras", "2", "--clip", str(clip)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, WATCHPOST_REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["fps"]) == {"1", "2"} and figures["ratio_to_one_process"]["1"] == 1
    assert all(fps > 0 for fps in figures["fps"].values())
