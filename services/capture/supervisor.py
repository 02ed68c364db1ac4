"""Run one capture loop per enabled camera, and follow camera changes without a restart.

The cameras table is the truth; the dashboard bumps `wp:cameras:version` after every change, and
the supervisor reconciles on the next check: new or re-enabled cameras start, disabled or removed
ones stop (finishing the frame in hand), a changed source restarts its loop. The camera named in
the settings is registered at start (the demo video too, while no camera is configured at all),
so `watchpost up` and a single-camera container need no API call. A video file that has played
to its end stays ended (unless `capture_loop`); a loop that died of an error is restarted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import cast

import psycopg
import redis

from services.capture.loop import CaptureLoop
from watchpost.db import Pool, cameras
from watchpost.db.cameras import CameraStatus
from watchpost.keys import Keys
from watchpost.settings import CaptureSettings
from watchpost.sources import redact

log = logging.getLogger(__name__)


@dataclass
class _Running:
    loop: CaptureLoop
    stop: threading.Event
    thread: threading.Thread

    @property
    def crashed(self) -> bool:
        """Gone without being asked to, and not because its video file simply ended."""
        return not self.thread.is_alive() and self.loop.status not in (
            CameraStatus.ENDED,
            CameraStatus.STOPPED,
        )


class CaptureSupervisor:
    def __init__(
        self,
        settings: CaptureSettings,
        *,
        redis_client: redis.Redis,
        pool: Pool,
        default_source: str | None,
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.pool = pool
        self.default_source = default_source
        self.keys = Keys(settings.stream_prefix)
        self.running: dict[str, _Running] = {}
        self._version: bytes | None = b"never"

    def run(self, stop: threading.Event) -> None:
        self._register_default()
        try:
            while not stop.is_set():
                self.reconcile()
                for running in list(self.running.values()):
                    running.loop.retry_status()
                stop.wait(self.settings.capture_cameras_check_seconds)
        finally:
            for camera_id in list(self.running):
                self._stop(camera_id)

    def reconcile(self, *, force: bool = False) -> None:
        try:
            # Our clients never decode responses: the value is bytes (or None).
            version = cast(bytes | None, self.redis.get(self.keys.cameras_version))
            crashed = [c for c, r in self.running.items() if r.crashed]
            if version == self._version and not crashed and not force:
                return
            with self.pool.connection() as conn:
                desired = cameras.enabled_cameras(conn)
        except (redis.RedisError, psycopg.Error) as exc:
            log.warning("cameras not reconciled (%s); keeping the running ones", exc)
            return
        self._version = version
        for camera_id, running in list(self.running.items()):
            if desired.get(camera_id) != running.loop.source or running.crashed:
                self._stop(camera_id)
        for camera_id, source in desired.items():
            if camera_id not in self.running:
                self._start(camera_id, source)

    def statuses(self) -> list[dict]:
        return [
            {
                "camera_id": c,
                "source": r.loop.source,
                "status": r.loop.status,
                "last_error": r.loop.last_error,
                "frames_published": r.loop.frames_published,
            }
            for c, r in sorted(self.running.items())
        ]

    def _register_default(self) -> None:
        if not self.default_source:
            return
        try:
            with self.pool.connection() as conn:
                if not self.settings.capture_source and cameras.list_cameras(conn):
                    return  # the demo video only stands in while no camera is configured
                cameras.upsert_camera(
                    conn,
                    camera_id=self.settings.capture_camera_id,
                    name=self.settings.capture_camera_id,
                    source=self.default_source,
                )
        except psycopg.Error as exc:
            log.warning("could not register camera %s: %s", self.settings.capture_camera_id, exc)

    def _start(self, camera_id: str, source: str) -> None:
        loop = CaptureLoop(
            self.settings,
            redis_client=self.redis,
            pool=self.pool,
            source=source,
            camera_id=camera_id,
            trusted=source == self.default_source,
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=loop.run, args=(stop,), name=f"capture-{camera_id}", daemon=True
        )
        self.running[camera_id] = _Running(loop, stop, thread)
        thread.start()
        log.info("camera %s started: %s", camera_id, redact(source))

    def _stop(self, camera_id: str) -> None:
        """Stop a loop and wait for it to finish its frame and report its status."""
        running = self.running[camera_id]
        running.stop.set()
        running.thread.join(30)
        del self.running[camera_id]
        log.info("camera %s stopped", camera_id)
