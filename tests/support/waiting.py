"""Waiting for something a background thread or process does (no timed assertions: the timeout
only bounds a wait for what must happen)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    """True as soon as `predicate()` is truthy; False if it never was within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
