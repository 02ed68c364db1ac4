"""Parts for fault-injection tests: the services as real processes that can be killed with
SIGKILL and restarted, a private Redis server that can be stopped and started again on the
same port (append-only file on, as in docker-compose.yml), and a TCP proxy in front of
PostgreSQL that can cut every connection and refuse new ones, to make the database go away
without touching the machine's shared server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port
from watchpost.settings import PROJECT_ROOT, SERVICE_SETTINGS


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ServiceProcess:
    """One service as `watchpost serve NAME`, with its own stable consumer name."""

    def __init__(self, name: str, env: dict[str, str], port: int, log_dir: Path) -> None:
        self.name = name
        self.env = {**env, "WATCHPOST_HTTP_PORT": str(port), "WATCHPOST_CONSUMER_NAME": name}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> float:
        """Start and wait until ready; returns the seconds it took."""
        started = time.monotonic()
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "watchpost.cli", "serve", self.name],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.ready, timeout, f"{self.name} to be ready", 0.2)
        return time.monotonic() - started

    def started(self) -> subprocess.Popen[bytes]:
        """The running process (a test that signals a service it never started is wrong)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process

    def ready(self) -> bool:
        assert self.started().poll() is None, f"{self.name} exited: {self.log.read_text()[-3000:]}"
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        self.started().send_signal(signal.SIGKILL)
        self.started().wait(10)

    def pause(self) -> None:
        self.started().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.started().send_signal(signal.SIGCONT)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus counter/gauge over the samples matching `labels`."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen | None) -> None:
    """Stop a service process as its runner would (SIGTERM), killing it after 30 s."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def service_ports() -> dict[str, int]:
    return {name: free_port() for name in SERVICE_SETTINGS}


class RedisServer:
    """A private redis-server with an append-only file, restartable on the same port."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, 20, "redis-server to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # flushes the append-only file
            self.process.wait(20)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `cut()` drops every connection and refuses new
    ones until `restore()` (the server behind it keeps running, as a partitioned one does)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # refused, as a server that is down would
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._sockets -= {source, sink}

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._listener.close()


def replace_port(url: str, host_port: str) -> str:
    """postgresql://user@127.0.0.1:5432/db -> the same URL with another host:port."""
    scheme, rest = url.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    _, _, path = location.partition("/")
    return f"{scheme}://{credentials + '@' if credentials else ''}{host_port}/{path}"


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHPOST_")}
    env.update(values)
    return env
