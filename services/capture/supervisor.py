"""Run one capture loop per enabled camera this node holds, and follow camera changes without a
restart.

The cameras table is the truth; the dashboard bumps `wp:cameras:version` after every change, and
the supervisor reconciles on the next check: new or re-enabled cameras start, disabled or removed
ones stop (finishing the frame in hand), a changed source restarts its loop. Several capture
processes (on one machine or many) share the cameras through leases in Redis
(`services/capture/leases.py`): each runs its fair share, and takes over the cameras of one that
stops or dies. The camera named in
the settings is registered at start (the demo video too, while no camera is configured at all),
so `watchpost up` and a single-camera container need no API call. A video file that has played
to its end stays ended (unless `capture_loop`); a loop that died of an error is restarted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import cast

import psycopg
import redis

from services.capture.leases import CameraLeases, plan
from services.capture.loop import CaptureLoop
from watchpost.db import Pool, cameras
from watchpost.db.cameras import CameraStatus
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
        self.keys = settings.keys
        self.running: dict[str, _Running] = {}
        self.leases = CameraLeases(
            redis_client, self.keys, settings.consumer_name, settings.capture_lease_seconds
        )
        self._version: bytes | None = b"never"
        self._desired: dict[str, str] = {}

    def run(self, stop: threading.Event) -> None:
        self._register_default()
        try:
            while not stop.is_set():
                self.reconcile()
                for running in list(self.running.values()):
                    running.loop.retry_status()
                stop.wait(self.settings.capture_cameras_check_seconds)
        finally:
            self._stop(*self.running)
            with contextlib.suppress(redis.RedisError):  # else our beat ages out in a lease time
                self.leases.leave()

    def reconcile(self, *, force: bool = False) -> None:
        """One check: re-read the cameras when they changed, beat, renew the leases this node
        holds, restart what crashed or changed, give back beyond the fair share, take up to it."""
        try:
            # Our clients never decode responses: the value is bytes (or None).
            version = cast(bytes | None, self.redis.get(self.keys.cameras_version))
            if version != self._version or force:
                with self.pool.connection() as conn:
                    self._desired = cameras.enabled_cameras(conn)
                self._version = version
            nodes = self.leases.heartbeat()
            held = self.leases.renew(self.running)
        except (redis.RedisError, psycopg.Error) as exc:
            log.warning("cameras not reconciled (%s); keeping the running ones", exc)
            return
        desired = self._desired
        for camera_id, running in list(self.running.items()):
            if camera_id not in held:
                log.warning("camera %s: its lease went to another node; stopping", camera_id)
                self._stop(camera_id, release=False)
            elif camera_id in desired and (
                desired[camera_id] != running.loop.source or running.crashed
            ):
                self._stop(camera_id, release=False)  # restarted below, on the lease we hold
                self._start(camera_id, desired[camera_id])
        todo = plan(self.leases.node, desired, set(self.running), nodes)
        self._stop(*todo.release)
        if not todo.room:
            return
        try:
            holders = self.leases.holders(todo.candidates)
            free = [c for c in todo.candidates if holders[c] is None]
            for camera_id in free[: todo.room]:
                if self.leases.take(camera_id):  # another node may have been quicker
                    self._start(camera_id, desired[camera_id])
        except redis.RedisError as exc:
            log.warning("cameras not taken (%s); trying again on the next check", exc)

    def statuses(self) -> list[dict]:
        return [
            {
                "camera_id": c,
                "source": r.loop.source,
                "status": r.loop.status,
                "last_error": r.loop.last_error,
                "frames_published": r.loop.frames_published,
                "frames_read": r.loop.frames_read,
                "node": self.leases.node,
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

    def _stop(self, *camera_ids: str, release: bool = True) -> None:
        """Stop loops (all at once) and wait for each to finish its frame and report its status;
        then give their leases back (unless restarted here, or another node holds them already)."""
        stopping = [(c, self.running.pop(c)) for c in camera_ids]
        for _, running in stopping:
            running.stop.set()
        for camera_id, running in stopping:
            running.thread.join(30)
            if release:
                try:
                    self.leases.release(camera_id)
                except redis.RedisError as exc:
                    log.warning("camera %s: lease not given back (%s); it expires", camera_id, exc)
            log.info("camera %s stopped", camera_id)
