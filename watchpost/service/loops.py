"""A service's background loop in a thread, stopped gracefully at shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs `target(stop)` in a daemon thread; `stop()` asks it to finish and waits."""

    def __init__(self, name: str, target: Callable[[threading.Event], object]) -> None:
        self.name = name
        self._target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._target(self._stop)
        except BaseException as exc:  # surfaced by /healthz, not swallowed
            self.error = exc
            log.exception("%s loop crashed", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def crashed(self) -> bool:
        return self.error is not None
