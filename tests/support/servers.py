"""Run an ASGI app on a real port in a thread, for tests that need real HTTP between services."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999): a port the kernel handed out
    for a client connection a moment ago (the stack tests open many) cannot then be taken by
    the service a test starts next."""
    for _ in range(200):
        port = random.randrange(20_000, 32_700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32700")


@contextmanager
def serving(app, port: int | None = None, **options) -> Iterator[str]:
    """Serve `app` on 127.0.0.1; `options` go to uvicorn.Config (e.g. `uvicorn_options(...)`,
    what `watchpost serve` passes)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
