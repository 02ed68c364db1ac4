"""The deployment as shipped, run for real: `docker compose` builds every image from the local
Debian base and the wheelhouse (deploy/images.py), brings the whole stack up with generated
secrets, the demo video mounted for capture and the TLS profile on, and the test then uses it as
an operator would: a key made in the dashboard container, a person enrolled through REST, the
alert on the websocket, a container crashed and restarted by its restart policy, the page over
HTTPS. Recognition, liveness and the aggregator run as two replicas each (`*_REPLICAS` in .env),
each holding shards of its own; the crashed ones are the replicas that hold the camera's shard.

Runs whenever a Docker engine can run (as root it installs and starts Debian's docker.io
itself); under CI it must run, so a missing engine fails there instead of skipping. The base
image and the wheelhouse are cached on the machine by a hash of what went into them; a fresh
machine builds both (a few minutes). Figures (build and start times, image sizes) are printed.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from deploy import images
from tests.conftest import data_dir, key_headers, require_data
from tests.e2e.test_stack import AlertListener, speaker_photo
from tests.support.faults import wait_until
from tests.support.servers import free_port
from watchpost.keys import shard_of
from watchpost.settings import PROJECT_ROOT

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.data,
    pytest.mark.timeout(1500),  # a fresh machine builds the base and the wheelhouse first
]

SERVICES = ["recognition", "liveness", "aggregator", "dashboard", "capture"]
LIGHT = ["aggregator", "dashboard"]  # their images must carry no dlib, OpenCV or TensorFlow
HEAVY_MODULES = ["dlib", "cv2", "tensorflow"]
# Two of each sharded service, set as a site would (.env; docker-compose.yml's `scale`).
REPLICAS = {"recognition": 2, "liveness": 2, "aggregator": 2}
COMPOSE_FILES = ["docker-compose.yml", "deploy/compose.debian-stores.yml", "deploy/compose.tls.yml"]
VIDEO_IN_CONTAINER = "/data/video/talking_blinks_720p.mp4"
# What differs from a site's deployment, and why: nothing is skipped as stale (the crashed run
# is compared exactly with the calm one, as in tests/e2e/test_faults.py), and capture notices
# an added camera sooner.
TEST_SETTINGS = {
    "WATCHPOST_FRAME_MAX_AGE_SECONDS": "0",
    "WATCHPOST_CAPTURE_CAMERAS_CHECK_SECONDS": "0.5",
}


def engine_or_skip() -> list[str]:
    """The compose command, with a running engine; skip where none can run, fail under CI."""
    try:
        images.ensure_engine()
        return images.compose_command()
    except images.DockerUnavailable as exc:
        reason = f"Docker cannot run here: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def inspect(container: str, template: str) -> str:
    return docker("inspect", "--format", template, container).strip()


@dataclass
class Compose:
    """One compose project of this test's own (its own name, .env, ports and volumes)."""

    command: list[str]
    project: str
    env_file: Path
    files: list[Path]
    dashboard_port: int
    https_port: int
    base: str  # an image with `kill`, for crashing a container without root
    admin: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    containers: dict[str, list[str]] = field(default_factory=dict)

    def arguments(self, *args: str) -> list[str]:
        return [
            *self.command,
            "--project-name",
            self.project,
            "--env-file",
            str(self.env_file),
            *(arg for path in self.files for arg in ("--file", str(path))),
            *args,
        ]

    def run(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        done = subprocess.run(
            self.arguments(*args),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"compose {' '.join(args)}:\n{done.stderr[-4000:]}"
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`run` in the background; `finish` waits for it."""
        return subprocess.Popen(
            self.arguments(*args),
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def finish(process: subprocess.Popen[str], timeout: float = 900) -> None:
        _, errors = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"{process.args!s}:\n{errors[-4000:]}"

    def exec(self, service: str, *command: str) -> str:
        return self.run("exec", "-T", service, *command, timeout=120)

    def replicas(self, service: str) -> list[str]:
        """The service's container ids, one per replica (a restart keeps them; asked once,
        compose v1 is slow)."""
        if service not in self.containers:
            found = self.run("ps", "-q", service).split()
            assert len(found) == REPLICAS.get(service, 1), (service, found)
            self.containers[service] = found
        return self.containers[service]

    def container(self, service: str) -> str:
        (only,) = self.replicas(service)
        return only

    def health(self, service: str) -> list[str]:
        return [inspect(c, "{{.State.Health.Status}}") for c in self.replicas(service)]

    def wait_healthy(self, services: list[str], timeout: float = 300) -> None:
        def all_healthy() -> bool:
            states = {s: self.health(s) for s in services}
            found = {state for replicas in states.values() for state in replicas}
            assert "unhealthy" not in found, f"{states}\n{self.logs(services)}"
            return found == {"healthy"}

        wait_until(all_healthy, timeout, f"{services} healthy", interval=1.0)

    def logs(self, services: list[str]) -> str:
        return self.run("logs", "--no-color", "--tail", "40", *services, check=False)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(
            method, f"{self.dashboard}{path}", headers=self.admin, timeout=60, **kwargs
        )

    def alerts(self, camera_id: str) -> Counter:
        listed = self.api("GET", "/api/v1/alerts", params={"camera_id": camera_id, "limit": 500})
        assert listed.status_code == 200, listed.text
        return Counter((a["kind"], a["display_name"]) for a in listed.json())

    def stored_alerts(self, camera_id: str) -> int:
        """The same count straight from PostgreSQL, in its container."""
        query = f"SELECT count(*) FROM alerts WHERE camera_id = '{camera_id}'"
        return int(
            self.exec("postgres", "psql", "-U", "watchpost", "-d", "watchpost", "-Atc", query)
        )

    def camera_status(self, camera_id: str) -> str | None:
        cameras = {c["id"]: c for c in self.api("GET", "/api/v1/cameras").json()}
        return cameras.get(camera_id, {}).get("status")

    def drained(self) -> bool:
        """Every consumer group has read and acknowledged everything (asked in a container:
        Redis is not published)."""
        script = (
            "import json, redis; from watchpost.keys import Keys; "
            "from watchpost.settings import CommonSettings; s = CommonSettings(); "
            "c = redis.Redis.from_url(s.redis_url); k = s.keys; out = []\n"
            "for sharded, n in ((k.frames, 2), (k.verdicts, 1)):\n"
            "    for stream in (x for x in sharded if c.exists(x)):\n"
            "        last = c.xinfo_stream(stream)['last-generated-id']\n"
            "        groups = c.xinfo_groups(stream)\n"
            "        out += [len(groups) == n] + [g['pending'] == 0 and "
            "g['last-delivered-id'] == last for g in groups]\n"
            "print(json.dumps(out))"
        )
        caught_up = json.loads(self.exec("aggregator", "python", "-c", script))
        return bool(caught_up) and all(caught_up)

    def shard_holders(self) -> dict[str, dict[int, str | None]]:
        """Which replica (consumer name) holds each shard's lease, per sharded service (asked
        in a container: Redis is not published)."""
        script = (
            "import json, redis; from watchpost.settings import CommonSettings; "
            "s = CommonSettings(); c = redis.Redis.from_url(s.redis_url, decode_responses=True); "
            "k = s.keys; leases = lambda n: [k.shard_lease(n, str(i)) for i in range(k.shards)]; "
            f"print(json.dumps({{n: c.mget(leases(n)) for n in {sorted(REPLICAS)!r}}}))"
        )
        found = json.loads(self.exec("aggregator", "python", "-c", script))
        return {name: dict(enumerate(holders)) for name, holders in found.items()}

    def consumer_names(self, service: str) -> dict[str, str]:
        """Each replica's consumer name (its host name and process id 1) to its container."""
        return {f"{inspect(c, '{{.Config.Hostname}}')}-1": c for c in self.replicas(service)}

    def each_replica_holds_its_share(self) -> bool:
        holders = self.shard_holders()
        for service, count in REPLICAS.items():
            names = self.consumer_names(service)
            held = Counter(holders[service].values())
            if set(held) != set(names) or set(held.values()) != {len(holders[service]) // count}:
                return False
        return True

    def crash(self, service: str, container: str) -> float:
        """SIGKILL a replica's process from the host, as a crash would (`docker kill` counts
        as a deliberate stop, which restart policies leave alone); wait until the restart
        policy has it healthy again. Returns the seconds that took."""
        restarts = int(inspect(container, "{{.RestartCount}}"))
        pid = int(inspect(container, "{{.State.Pid}}"))
        since = inspect(container, "{{.State.StartedAt}}")
        started = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)
        except PermissionError:  # not root: a member of the docker group can still do it
            docker("run", "--rm", "--pid=host", "--privileged", self.base, "kill", "-9", str(pid))
        wait_until(
            lambda: int(inspect(container, "{{.RestartCount}}")) > restarts,
            60,
            f"{service} restarted by its policy",
            interval=0.2,
        )
        self.wait_healthy([service], timeout=180)
        now = self.run("ps", "-q", service).split()
        assert sorted(now) == sorted(self.replicas(service))  # restarted, not replaced
        took = time.monotonic() - started
        for replica in self.replicas(service):  # who took which shard since (for the record)
            logs = subprocess.run(
                ["docker", "logs", "--since", since, replica], capture_output=True, text=True
            )
            moves = [
                json.loads(line)["msg"]
                for line in (logs.stdout + logs.stderr).splitlines()
                if '"watchpost.shards"' in line
            ]
            print(f"\n{service} {replica[:12]}{' (crashed)' * (replica == container)}: {moves}")
        return took


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Compose]:
    command = engine_or_skip()
    require_data("video/talking_blinks_720p.mp4")
    started = time.monotonic()
    base = images.base_image()
    timings = {"base": time.monotonic() - started}

    work = tmp_path_factory.mktemp("compose")
    env_file = work / ".env"
    subprocess.run(
        [sys.executable, "-m", "watchpost.cli", "secrets", "--env-file", str(env_file)],
        check=True,
        capture_output=True,
    )
    dashboard_port, https_port = free_port(), free_port()
    with env_file.open("a") as env:
        env.write(
            f"BASE_IMAGE={base}\n"
            f"DASHBOARD_PUBLISH=127.0.0.1:{dashboard_port}\n"
            f"HTTPS_PUBLISH=127.0.0.1:{https_port}\n"
            f"WATCHPOST_DATA_DIR={data_dir().resolve()}\n"
            + "".join(f"{name.upper()}_REPLICAS={n}\n" for name, n in REPLICAS.items())
        )
    overrides = work / "test-settings.yml"
    overrides.write_text(
        yaml.safe_dump({"services": {name: {"environment": TEST_SETTINGS} for name in SERVICES}})
    )
    compose = Compose(
        command=command,
        project=f"wptest{uuid.uuid4().hex[:8]}",
        env_file=env_file,
        files=[*(PROJECT_ROOT / f for f in COMPOSE_FILES), overrides],
        dashboard_port=dashboard_port,
        https_port=https_port,
        timings=timings,
        base=base,
    )
    debian_images = None
    try:
        # The images of Debian packages need only the base: they build while pip makes the
        # wheelhouse and the service images build from it.
        mark = time.monotonic()
        debian_images = compose.start("build", "redis", "postgres", "https")
        wheelhouse = images.wheelhouse_image(base)
        timings["wheelhouse"] = time.monotonic() - mark
        with env_file.open("a") as env:
            env.write(f"WHEELHOUSE_IMAGE={wheelhouse}\n")
        compose.run("build", *SERVICES)
        compose.finish(debian_images)
        timings["compose build"] = time.monotonic() - mark - timings["wheelhouse"]
        mark = time.monotonic()
        # Everything but capture: it plays the demo video once at start, after the enrolment.
        others = [s for s in SERVICES if s != "capture"]
        compose.run("up", "-d", "redis", "postgres", *others, "https")
        compose.wait_healthy(["redis", "postgres", *others, "https"])
        timings["up to healthy"] = time.monotonic() - mark
        key = compose.exec(
            "dashboard", "watchpost", "keys", "create", "--name", "compose-test", "--role", "admin"
        ).strip()
        assert key.startswith("wp_"), key
        compose.admin = key_headers(key)
        yield compose
    finally:
        if debian_images is not None and debian_images.poll() is None:
            debian_images.kill()
        print(f"\ncompose timings (s): { {k: round(v) for k, v in timings.items()} }")
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)


def built_images() -> dict[str, str]:
    """Service name to image name, as the compose files (with the overrides) name them."""
    named: dict[str, str] = {}
    for path in COMPOSE_FILES:
        for name, service in yaml.safe_load((PROJECT_ROOT / path).read_text())["services"].items():
            if "image" in service:
                named[name] = service["image"]
    return named


def test_images_run_as_non_root_and_the_light_ones_carry_no_heavy_libraries(stack):
    sizes = {}
    for service, image in built_images().items():
        sizes[service] = int(inspect(image, "{{.Size}}")) / 1e6
        uid = docker("run", "--rm", "--entrypoint", "id", image, "-u").strip()
        assert uid != "0", f"{service} runs as root"
    print(f"\nimage sizes (MB): { {k: round(v) for k, v in sizes.items()} }")
    probe = (
        "import importlib.util, json, os; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if importlib.util.find_spec(m)]))"
    )
    for service in SERVICES:
        image = built_images()[service]
        found = json.loads(docker("run", "--rm", "--entrypoint", "python", image, "-c", probe))
        # TensorFlow in none: liveness runs its CNN's LiteRT export.
        expected = [] if service in LIGHT else ["dlib", "cv2"]
        assert found == expected, f"{service}: {found}"
        # No wheelhouse and no sources stayed in the image.
        left = docker(
            "run", "--rm", "--entrypoint", "ls", image, "-d", "/wheels", "/src", check=False
        )
        assert left == "", f"{service}: {left}"


def test_enrol_alert_crash_and_restart_lose_nothing(stack, tmp_path):
    video = require_data("video/talking_blinks_720p.mp4")
    photo = speaker_photo(video, tmp_path / "speaker.jpg", 2.0)
    created = stack.api("POST", "/api/v1/identities", json={"display_name": "Speaker"})
    assert created.status_code == 201, created.text
    face = stack.api(
        "POST",
        f"/api/v1/identities/{created.json()['id']}/faces",
        files={"file": (photo.name, photo.read_bytes())},
    )
    assert face.status_code == 201, face.text

    # The calm run: capture starts and plays the mounted demo video as its default camera.
    listener = AlertListener(
        f"ws://127.0.0.1:{stack.dashboard_port}/api/v1/alerts/ws?after=0", stack.admin
    )
    try:
        stack.run("up", "-d", "capture")
        stack.wait_healthy(["capture"])
        message = listener.wait_for(lambda a: a["kind"] == "access_granted", timeout=180)
    finally:
        listener.ws.close()
    alert = message["alert"]
    assert (alert["display_name"], alert["camera_id"], alert["liveness"]) == (
        "Speaker",
        "front-door",
        "live",
    )
    wait_until(lambda: stack.camera_status("front-door") == "ended", 180, "front-door ended")
    wait_until(stack.drained, 180, "every frame and verdict handled", interval=1.0)
    expected = stack.alerts("front-door")
    assert expected[("access_granted", "Speaker")] == 1, expected

    # Every replica holds its share of the shards (two of the four), named by its host name.
    wait_until(stack.each_replica_holds_its_share, 60, "the shards split between replicas", 1.0)
    holders = stack.shard_holders()
    print(f"\nshard leases: {holders}")

    # The same video on a camera added through the API, with the replicas of the aggregator and
    # recognition that hold its shard crashed one after the other while it plays: the other
    # replica takes the shard over if the lease expires before the crashed one is back (which
    # re-takes its own lease otherwise), and the restarted one takes its share back.
    body = {"id": "hurt", "name": "hurt", "source": VIDEO_IN_CONTAINER}
    assert stack.api("POST", "/api/v1/cameras", json=body).status_code == 201
    wait_until(lambda: stack.camera_status("hurt") == "online", 60, "camera online", 0.2)
    shard = shard_of("hurt", len(holders["aggregator"]))
    recovered = {
        name: stack.crash(name, stack.consumer_names(name)[holders[name][shard]])
        for name in ("aggregator", "recognition")
    }
    wait_until(lambda: stack.camera_status("hurt") == "ended", 240, "hurt ended")
    wait_until(stack.drained, 240, "every frame and verdict handled", interval=1.0)
    time.sleep(2.0)  # an alert is written before its verdict's ack; settle anyway
    got = stack.alerts("hurt")
    print(
        f"\ncrash: expected {dict(expected)}, stored {dict(got)}, healthy again after {recovered}"
    )
    assert got == expected  # nothing lost, nothing twice
    assert stack.stored_alerts("hurt") == sum(got.values())
    wait_until(stack.each_replica_holds_its_share, 60, "the shards split again", 1.0)


def test_the_tls_profile_serves_the_dashboard_over_https_with_secure_cookies(stack, tmp_path):
    # Caddy's internal CA made the certificate; trust exactly that root, nothing else.
    root = tmp_path / "caddy-root.crt"
    root.write_text(stack.exec("https", "cat", "/data/caddy/pki/authorities/local/root.crt"))
    context = ssl.create_default_context(cafile=str(root))
    base = f"https://localhost:{stack.https_port}"
    with httpx.Client(base_url=base, verify=context, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert page.url.scheme == "https"
        key = stack.admin["Authorization"].removeprefix("Bearer ")
        login = client.post("/api/v1/session", json={"key": key})
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie
        assert client.get("/api/v1/session").json()["role"] == "admin"
    with pytest.raises(httpx.ConnectError):  # the system's trust store does not know that CA
        httpx.get(f"{base}/healthz", timeout=10)
    # The websocket through the proxy: it replays the newest stored alert (the earlier test
    # stored some; run alone, the handshake is what is checked).
    newest = stack.api("GET", "/api/v1/alerts", params={"limit": 1}).json()
    after = newest[0]["id"] - 1 if newest else 0
    with connect(
        f"wss://localhost:{stack.https_port}/api/v1/alerts/ws?after={after}",
        ssl=context,
        additional_headers=stack.admin,
        open_timeout=30,
    ) as ws:
        if newest:
            assert json.loads(ws.recv(timeout=30))["alert"]["id"] == newest[0]["id"]
