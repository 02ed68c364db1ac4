"""A real Mosquitto for tests: Debian's `mosquitto` binary started on a free port, with an optional
password file and TLS listener, and a paho subscriber that records what arrives."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.servers import free_port

LOCAL_BROKER = "127.0.0.1:1883"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Mosquitto:
    """One broker process. `users` (name -> password) turns anonymous access off; `tls` is
    (ca, cert, key) paths for a TLS listener (then `port` is TLS only)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] | None = None
    tls: tuple[Path, Path, Path] | None = None
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Mosquitto:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "user root" if _is_root() else "",  # as root it would switch to `mosquitto`
        ]
        if self.users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for name, password in self.users.items():
                subprocess.run([passwd, "-b", str(passwords), name, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(line for line in lines if line) + "\n")
        self.log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not reachable("127.0.0.1", self.port, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mosquitto did not start: {(self.workdir / 'mosquitto.log').read_text()}"
                )
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """Die at once, as a crashed broker would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


class Subscriber:
    """A paho client subscribed to `topics`; `messages` records (topic, payload, retained)."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        host: str = "127.0.0.1",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError(f"could not subscribe to {topics} on {host}:{port}")

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            self.messages.append((message.topic, message.payload, bool(message.retain)))
            self._changed.notify_all()

    def on(self, topic: str) -> list[bytes]:
        with self._changed:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait_for(self, topic: str, count: int = 1, timeout: float = 15.0) -> list[bytes]:
        """The payloads on `topic`, once at least `count` arrived (fewer after the timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [payload for t, payload, _ in self.messages if t == topic]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._changed.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
