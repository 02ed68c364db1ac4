"""The whole system as separate processes, as it runs in production: a real video goes in, an
alert comes out in PostgreSQL and on the dashboard's websocket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import cv2
import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from tests.conftest import SERVICE_TOKEN_ENV, key_headers, require_data
from tests.support.servers import free_port
from watchpost.settings import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.data]


def port_block(count: int = 5) -> int:
    """An offset such that default ports 8000..8004 plus it are all free."""
    for _ in range(50):
        offset = free_port() - 8000
        if offset > 0 and all(_free(8000 + offset + i) for i in range(count)):
            return offset
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def service(name: str, env: dict, port: int):
    process = subprocess.Popen(
        [sys.executable, "-m", "watchpost.cli", "serve", name],
        env={**env, "WATCHPOST_HTTP_PORT": str(port)},
        cwd=PROJECT_ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"{name} exited with {process.returncode}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{name} not ready"
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn shuts down gracefully, then re-raises the signal (exit status -SIGTERM).
            assert process.wait(30) in (0, -signal.SIGTERM), f"{name} did not stop cleanly"
        except subprocess.TimeoutExpired:
            process.kill()
            raise


class AlertListener:
    """Collects what the dashboard's websocket pushes, in a thread."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.messages: list[dict] = []
        self.ws = connect(url, additional_headers=headers)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                message["received_at"] = time.time()
                self.messages.append(message)
        except Exception:  # the socket closes when the test ends
            return

    def wait_for(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if predicate(message["alert"]):
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no matching alert in {timeout}s; got {self.messages}")


def speaker_photo(video: Path, path: Path, at_seconds: float) -> Path:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_MSEC, at_seconds * 1000)
    ok, bgr = capture.read()
    assert ok
    cv2.imwrite(str(path), bgr)
    return path


def test_video_in_alert_out(tmp_path, redis_url, database_url, prefix, admin_key):
    video = require_data("video/talking_blinks_720p.mp4")
    obama = require_data("faces/train/obama/obama.jpg")
    offset = port_block()
    ports = {
        n: p + offset
        for n, p in {
            "dashboard": 8000,
            "recognition": 8001,
            "capture": 8002,
            "liveness": 8003,
            "aggregator": 8004,
        }.items()
    }
    env = {
        **os.environ,
        "WATCHPOST_REDIS_URL": redis_url,
        "WATCHPOST_DATABASE_URL": database_url,
        "WATCHPOST_STREAM_PREFIX": prefix,
        "WATCHPOST_DASHBOARD_RECOGNITION_URL": f"http://127.0.0.1:{ports['recognition']}",
        "WATCHPOST_CAPTURE_SOURCE": str(video),
        "WATCHPOST_CAPTURE_CAMERA_ID": "front-door",
        **SERVICE_TOKEN_ENV,
    }
    dashboard = f"http://127.0.0.1:{ports['dashboard']}"
    admin = key_headers(admin_key)
    with (
        service("recognition", env, ports["recognition"]),
        service("liveness", env, ports["liveness"]),
        service("aggregator", env, ports["aggregator"]),
        service("dashboard", env, ports["dashboard"]),
    ):
        # Enrol two people through the REST API: one from the face photos, and the speaker in
        # the video from a frame taken 2 s in.
        for name, photo in [
            ("Barack Obama", obama),
            ("Speaker", speaker_photo(video, tmp_path / "speaker.jpg", 2.0)),
        ]:
            created = httpx.post(
                f"{dashboard}/api/v1/identities", json={"display_name": name}, headers=admin
            )
            assert created.status_code == 201
            face = httpx.post(
                f"{dashboard}/api/v1/identities/{created.json()['id']}/faces",
                files={"file": (photo.name, photo.read_bytes())},
                headers=admin,
                timeout=60,
            )
            assert face.status_code == 201, face.text
        listener = AlertListener(
            f"ws://127.0.0.1:{ports['dashboard']}/api/v1/alerts/ws?after=0", admin
        )
        started = time.time()
        with service("capture", env, ports["capture"]):
            message = listener.wait_for(lambda a: a["kind"] == "access_granted", timeout=90)
            cameras = httpx.get(f"{dashboard}/api/v1/cameras", headers=admin).json()
            assert [(c["id"], c["status"]) for c in cameras] == [("front-door", "online")]
        alert = message["alert"]
        created_at = datetime.fromisoformat(alert["created_at"]).timestamp()  # ISO, as the API
        # Reported, not asserted (timings do not belong in tests): decision to websocket.
        print(
            f"alert pushed {1000 * (message['received_at'] - created_at):.0f} ms after "
            f"it was stored, {message['received_at'] - started:.1f} s after capture started"
        )
        assert alert["display_name"] == "Speaker" and alert["camera_id"] == "front-door"
        assert alert["liveness"] == "live"
        assert created_at >= started
        snapshot = httpx.get(f"{dashboard}{alert['snapshot_url']}", headers=admin)
        assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
        cameras = httpx.get(f"{dashboard}/api/v1/cameras", headers=admin).json()
        assert [(c["id"], c["status"]) for c in cameras] == [("front-door", "stopped")]
        listener.ws.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, display_name, length(snapshot_jpeg) FROM alerts"
        ).fetchall()
    # One person, one track, one alert: no unknown-person alert for an enrolled, live speaker.
    assert len(rows) == 1 and rows[0][:2] == ("access_granted", "Speaker") and rows[0][2] > 1000


def test_watchpost_up_runs_everything_on_embedded_servers_and_stops_cleanly(tmp_path):
    require_data("video/talking_blinks_720p.mp4")  # the demo video `up` plays by default
    offset = port_block()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WATCHPOST_REDIS_URL", "WATCHPOST_DATABASE_URL")
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchpost.cli",
            "up",
            "--home",
            str(tmp_path / "home"),
            "--port-offset",
            str(offset),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    output = process.stdout
    assert output is not None
    threading.Thread(target=lambda: lines.extend(iter(output.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        while not any("Dashboard: http://" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        dashboard = f"http://127.0.0.1:{8000 + offset}"
        assert any("embedded Redis" in line for line in lines)
        assert any("embedded PostgreSQL" in line for line in lines)
        # A first start makes an admin key and shows it once; without it the API is closed.
        (key,) = [line.strip() for line in lines if line.strip().startswith("wp_")]
        assert httpx.get(f"{dashboard}/api/v1/alerts").status_code == 401
        admin = key_headers(key)
        deadline = time.monotonic() + 90
        while not (alerts := httpx.get(f"{dashboard}/api/v1/alerts", headers=admin).json()):
            assert time.monotonic() < deadline, "no alert from the demo video"
            time.sleep(0.5)
        assert alerts[0]["kind"] == "unknown_person"  # nobody is enrolled
        pids = [int(line.rsplit("pid ", 1)[1].rstrip(")\n")) for line in lines if "(pid " in line]
        assert len(pids) == 5
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
    assert code == 0, "".join(lines)
    assert any(line.startswith("stopped.") for line in lines)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
