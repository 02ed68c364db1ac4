"""Faults survived, nothing lost: the five services run as processes on a private Redis (with
its append-only file, as in compose) and behind a TCP proxy to PostgreSQL, play real videos
through cameras added by the API, and are hurt on the way: SIGKILL and restart, Redis stopped
and started again, the database cut off for 30 s, a network camera that drops, a consumer that
stalls. Each test compares the alerts in PostgreSQL with what the same video gives unharmed.
Figures (recovery times) are printed; docs/reliability.md records them."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import SERVICE_TOKEN_ENV, key_headers, require_data
from tests.support import shards
from tests.support.faults import (
    RedisServer,
    ServiceProcess,
    TcpProxy,
    environment,
    service_ports,
    wait_until,
)
from tests.support.mjpeg_camera import MjpegCamera
from watchpost.keys import Group, Keys
from watchpost.messages import RecognitionVerdict, decode

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.data]

ORDER = ["recognition", "liveness", "aggregator", "dashboard", "capture"]
MAXLEN = 150  # frames kept in the stream in the stalled-consumer test


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    redis_server: RedisServer
    proxy: TcpProxy
    database_url: str  # direct, not through the proxy: what the test itself reads
    keys: Keys
    admin: dict[str, str]

    @property
    def dashboard(self) -> str:
        return self.services["dashboard"].url

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(
            method, f"{self.dashboard}{path}", headers=self.admin, timeout=60, **kwargs
        )

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url)

    def enrol(self, name: str, photo: Path) -> None:
        identity = self.api("POST", "/api/v1/identities", json={"display_name": name}).json()
        face = self.api(
            "POST",
            f"/api/v1/identities/{identity['id']}/faces?largest=true",
            files={"file": (photo.name, photo.read_bytes())},
        )
        assert face.status_code == 201, face.text

    def add_camera(self, camera_id: str, source: str) -> None:
        body = {"id": camera_id, "name": camera_id, "source": source}
        assert self.api("POST", "/api/v1/cameras", json=body).status_code == 201

    def camera(self, camera_id: str) -> dict:
        cameras = {c["id"]: c for c in self.api("GET", "/api/v1/cameras").json()}
        return cameras.get(camera_id, {})

    def drained(self) -> bool:
        """Every consumer group has read and acknowledged everything."""
        client = self.redis()
        try:
            caught_up = []
            for sharded, groups in ((self.keys.frames, 2), (self.keys.verdicts, 1)):
                for stream in sharded:  # the shards that carried anything
                    if not client.exists(stream):
                        continue
                    last = client.xinfo_stream(stream)["last-generated-id"]
                    # Not `lag`: Redis cannot compute it (nil) once trimming skipped entries.
                    found = client.xinfo_groups(stream)
                    caught_up += [len(found) == groups] + [
                        g["pending"] == 0 and g["last-delivered-id"] == last for g in found
                    ]
        except redis.RedisError:
            return False
        finally:
            client.close()
        return bool(caught_up) and all(caught_up)

    def play(self, camera_id: str, video: Path, during=None, timeout: float = 240) -> None:
        """Add a camera on the video, call `during()` while it plays, wait until every frame
        and verdict is handled."""
        self.add_camera(camera_id, str(video))
        wait_until(lambda: self.camera(camera_id).get("status") == "online", 60, "camera online")
        if during is not None:
            during()
        wait_until(
            lambda: self.camera(camera_id).get("status") == "ended", timeout, f"{camera_id} ended"
        )
        wait_until(self.drained, timeout, "every frame and verdict to be handled", 0.5)
        time.sleep(1.0)  # the last verdict's alert is written before its ack; settle anyway

    def alerts(self, camera_id: str) -> Counter:
        return Counter((kind, name) for kind, name, _ in self.reasons(camera_id))

    def reasons(self, camera_id: str) -> list[tuple[str, str | None, str]]:
        """Each alert of the camera with its reason (for a failing assertion to say why)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT kind, display_name, reason FROM alerts WHERE camera_id = %s ORDER BY id",
                (camera_id,),
            ).fetchall()
        return [tuple(row) for row in rows]


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra settings for the stack (a test overrides this fixture by parametrizing it)."""
    return {}


@pytest.fixture
def stack(tmp_path, migrated_url, prefix, make_key, stack_env):
    target = conninfo_to_dict(migrated_url)
    if str(target.get("host", "")).startswith("/"):
        pytest.fail("the fault tests proxy PostgreSQL over TCP; give them a TCP server")
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    proxy = TcpProxy(str(target.get("host", "127.0.0.1")), int(str(target.get("port", 5432))))
    proxied = make_conninfo(migrated_url, host="127.0.0.1", port=str(proxy.port))
    ports = service_ports()
    env = environment(
        WATCHPOST_REDIS_URL=redis_server.url,
        WATCHPOST_DATABASE_URL=proxied,
        WATCHPOST_STREAM_PREFIX=prefix,
        **SERVICE_TOKEN_ENV,
        WATCHPOST_FRAME_MAX_AGE_SECONDS="0",  # nothing is skipped as stale: compare exactly
        WATCHPOST_CAPTURE_CAMERAS_CHECK_SECONDS="0.2",
        WATCHPOST_CAPTURE_RECONNECT_SECONDS="1",
        WATCHPOST_DATA_DIR=str(tmp_path / "no-demo"),  # no demo camera: cameras come by API
        # Cameras added by the API: the real videos, and a network camera on this host.
        WATCHPOST_CAMERA_SOURCE_DIRS=json.dumps([str(require_data("video"))]),
        WATCHPOST_CAMERA_SOURCE_HOSTS='["127.0.0.1/32"]',
        WATCHPOST_DASHBOARD_RECOGNITION_URL=f"http://127.0.0.1:{ports['recognition']}",
        WATCHPOST_RECOGNITION_LIVENESS_URL=f"http://127.0.0.1:{ports['liveness']}",
        **stack_env,
    )
    services = {name: ServiceProcess(name, env, ports[name], tmp_path) for name in ORDER}
    try:
        for service in services.values():
            service.start()
        yield Stack(
            services=services,
            redis_server=redis_server,
            proxy=proxy,
            database_url=migrated_url,
            keys=Keys(prefix),
            admin=key_headers(make_key("admin")),
        )
    finally:
        proxy.restore()
        for service in reversed(services.values()):
            service.resume() if service.process and service.process.poll() is None else None
            service.stop()
        proxy.close()
        redis_server.stop()


@pytest.fixture
def speaker(tmp_path) -> tuple[Path, Path]:
    """The talking video and a photo of its speaker taken 2 s in (enrolled in these tests)."""
    import cv2

    video = require_data("video/talking_blinks_720p.mp4")
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_MSEC, 2000)
    ok, bgr = capture.read()
    assert ok
    photo = tmp_path / "speaker.jpg"
    cv2.imwrite(str(photo), bgr)
    return video, photo


def test_killed_services_restart_and_every_alert_is_stored_exactly_once(stack, speaker):
    video, photo = speaker
    stack.enrol("Speaker", photo)
    stack.play("calm", video)
    expected = stack.alerts("calm")
    assert expected[("access_granted", "Speaker")] == 1, expected

    restarts: dict[str, float] = {}

    def carnage() -> None:
        for name in ("aggregator", "recognition", "liveness"):
            time.sleep(1.0)
            stack.services[name].kill9()
            restarts[name] = stack.services[name].start()

    stack.play("hurt", video, during=carnage)
    got = stack.alerts("hurt")
    print(f"\nkill -9: expected {dict(expected)}, stored {dict(got)}, restart seconds {restarts}")
    assert got == expected  # nothing lost, nothing twice


def test_redis_stops_and_starts_again_and_the_services_carry_on(stack, speaker):
    video, photo = speaker
    stack.enrol("Speaker", photo)
    capture = stack.services["capture"]

    def outage() -> None:
        time.sleep(1.0)
        stack.redis_server.stop()
        time.sleep(5.0)
        stack.redis_server.start()
        back = time.monotonic()
        published = capture.metric("watchpost_capture_frames_published_total")
        wait_until(
            lambda: capture.metric("watchpost_capture_frames_published_total") > published,
            60,
            "capture to publish again",
        )
        print(f"\nRedis back: capture publishing again after {time.monotonic() - back:.1f} s")

    stack.play("bumpy", video, during=outage)
    dropped = capture.metric("watchpost_capture_frames_dropped_total")
    assert dropped > 0  # frames lost while Redis was away are counted, not hidden
    for service in stack.services.values():
        assert httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200, service.name
    # And the stack works as before: the same video afterwards gives the same alert.
    stack.play("after", video)
    # (Failed once in two clean-clone CI runs on 3 December, passing on the same code before and
    # after; the alerts' reasons say why the next time.)
    assert stack.alerts("after")[("access_granted", "Speaker")] == 1, stack.reasons("after")
    print(f"Redis outage: {dropped:.0f} frames dropped by capture")


def test_alerts_decided_while_postgres_is_away_are_written_when_it_returns(stack, speaker):
    video, photo = speaker
    stack.enrol("Speaker", photo)
    stack.play("calm", video)
    expected = stack.alerts("calm")
    timeline = {}

    def outage() -> None:
        stack.proxy.cut()
        timeline["cut"] = time.monotonic()
        time.sleep(30)
        stack.proxy.restore()
        restored = time.monotonic()
        wait_until(lambda: stack.alerts("dark"), 60, "the alert decided meanwhile to be stored")
        timeline["stored_after"] = time.monotonic() - restored

    stack.play("dark", video, during=outage, timeout=300)
    got = stack.alerts("dark")
    print(
        f"\nPostgres away 30 s: expected {dict(expected)}, stored {dict(got)}, "
        f"{timeline['stored_after']:.1f} s after it returned"
    )
    assert got == expected
    aggregator = stack.services["aggregator"]
    assert aggregator.metric("watchpost_infrastructure_errors_total") > 0  # it did notice


def test_a_camera_that_drops_goes_offline_and_comes_back(stack):
    video = require_data("video/talking_blinks_720p.mp4")
    with MjpegCamera(video, fps=15, repeat=True) as camera:
        port = camera.server.server_address[1]
        stack.add_camera("ipcam", camera.url)
        wait_until(lambda: stack.camera("ipcam").get("status") == "online", 60, "online")
    dropped = time.monotonic()
    wait_until(lambda: stack.camera("ipcam").get("status") in ("offline", "error"), 30, "offline")
    seen_offline = time.monotonic() - dropped
    capture = stack.services["capture"]
    before = capture.metric("watchpost_capture_frames_published_total", camera="ipcam")
    with MjpegCamera(video, fps=15, repeat=True, port=port):
        returned = time.monotonic()
        wait_until(lambda: stack.camera("ipcam").get("status") == "online", 60, "online again")
        wait_until(
            lambda: (
                capture.metric("watchpost_capture_frames_published_total", camera="ipcam") > before
            ),
            30,
            "frames again",
        )
        back_after = time.monotonic() - returned
    print(f"\ncamera drop: offline after {seen_offline:.1f} s, online {back_after:.1f} s after")


@pytest.mark.parametrize("stack_env", [{"WATCHPOST_CAPTURE_STREAM_MAXLEN": str(MAXLEN)}])
def test_a_stalled_consumer_costs_old_frames_never_verdicts_or_alerts(stack, speaker):
    """Liveness stops reading (SIGSTOP) while two cameras play their videos into a frame
    stream kept to about MAXLEN entries: Redis memory stays bounded, frames the stalled reader
    never saw are gone (shown by the gap between frames published and frames it handled), and
    recognition, the verdicts and the alerts go on untouched."""
    video, photo = speaker
    stack.enrol("Speaker", photo)
    liveness = stack.services["liveness"]
    capture = stack.services["capture"]
    client = stack.redis()
    handled_before = liveness.metric("watchpost_messages_processed_total")
    liveness.pause()  # alive, reading nothing
    try:
        # Both cameras on one shard (crc32 % 4 = 1), so one stream's bound is at stake.
        for camera in ("slow-1", "slow-3"):
            stack.add_camera(camera, str(video))
        wait_until(
            lambda: all(stack.camera(c).get("status") == "ended" for c in ("slow-1", "slow-3")),
            180,
            "both videos to end",
        )
        lengths = [client.xlen(shard) for shard in stack.keys.frames]
        length = sum(lengths)
        memory = client.info("memory")["used_memory"]
    finally:
        liveness.resume()
    published = capture.metric("watchpost_capture_frames_published_total")
    wait_until(stack.drained, 240, "every consumer to catch up", 0.5)
    time.sleep(1.0)
    handled = liveness.metric("watchpost_messages_processed_total") - handled_before
    alerts = stack.alerts("slow-1") + stack.alerts("slow-3")
    print(
        f"\nstalled liveness: frames stream held {length} entries (Redis {memory / 1e6:.1f} MB);"
        f" {published:.0f} frames published, liveness handled {handled:.0f}; alerts {dict(alerts)}"
    )
    assert max(lengths) <= MAXLEN + 100  # each shard bounded (trimming is approximate)
    assert handled < published  # the oldest frames were dropped for it
    for shard in stack.keys.verdicts:
        if not client.exists(shard):
            continue
        last_verdict = client.xinfo_stream(shard)["last-generated-id"]
        groups = client.xinfo_groups(shard)
        aggregator = next(g for g in groups if g["name"].decode() == Group.AGGREGATOR)
        assert aggregator["pending"] == 0 and aggregator["last-delivered-id"] == last_verdict
    # Every verdict was handled and every alert decided was stored. (Whether liveness still saw
    # a blink on each camera depends on which frames it lost, so that is not asserted.)
    aggregator_service = stack.services["aggregator"]
    handled_verdicts = aggregator_service.metric("watchpost_messages_processed_total")
    assert handled_verdicts == shards.length(client, stack.keys.verdicts)
    assert aggregator_service.metric("watchpost_alerts_total") == sum(alerts.values())
    # Recognition went on for both cameras. (No alert need follow: without a blink among the
    # frames liveness kept, a known face is neither granted nor refused.)
    judged = Counter(
        decode(fields, RecognitionVerdict)[0].camera_id
        for _, fields in shards.entries(client, stack.keys.verdicts)
        if fields[b"type"] == b"RecognitionVerdict"
    )
    assert set(judged) == {"slow-1", "slow-3"}
    # Frames the stalled reader never saw are not time without a blink: no false spoof alert.
    assert not any(kind == "spoof_attempt" for kind, _ in alerts), alerts
    client.close()
