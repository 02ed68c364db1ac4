"""Read a camera, find and track faces, publish the frames that contain faces."""

from __future__ import annotations

import json
import logging
import threading
import time

import cv2
import numpy as np
import psycopg
import redis
from prometheus_client import Counter, Gauge, Histogram

from services.capture.source import SourceError, VideoSource, open_source
from watchpost.db import Pool, cameras
from watchpost.db.cameras import CameraStatus
from watchpost.geometry import Box, BoxTuple
from watchpost.messages import FaceCrop, Frame, TrackedFace
from watchpost.settings import CaptureSettings
from watchpost.sources import redact
from watchpost.streams import publish
from watchpost.vision import blazeface
from watchpost.vision.faces import detect_faces
from watchpost.vision.models import LOCK as MODEL_LOCK
from watchpost.vision.tracking import FaceTracker, Follow

log = logging.getLogger(__name__)

FRAMES_READ = Counter("watchpost_capture_frames_read_total", "Frames decoded", ["camera"])
FRAMES_SKIPPED = Counter(
    "watchpost_capture_frames_skipped_total", "Frames skipped to keep up with real time", ["camera"]
)
FRAMES_PUBLISHED = Counter(
    "watchpost_capture_frames_published_total", "Frames with faces sent on", ["camera"]
)
FRAMES_DROPPED = Counter(
    "watchpost_capture_frames_dropped_total",
    "Frames lost because Redis was unreachable",
    ["camera"],
)
DETECT_SECONDS = Histogram("watchpost_capture_detect_seconds", "Face detection time", ["camera"])
FPS = Gauge("watchpost_capture_fps", "Frames processed per second", ["camera"])

STATUS_EVERY_S = 2.0
CROP_JPEG_QUALITY = 95  # the crops are evidence of texture: keep the JPEG's own artefacts small
MAX_CROP_TRACKS = 256
LIVE_COLOURS = {"live": (74, 163, 22), "spoof": (38, 38, 220), "undecided": (6, 119, 217)}  # BGR


class CaptureLoop:
    def __init__(
        self,
        settings: CaptureSettings,
        *,
        redis_client: redis.Redis,
        pool: Pool | None,
        source: str,
        camera_id: str | None = None,
        trusted: bool = False,
    ) -> None:
        """`trusted`: the source is the operator's own (WATCHPOST_CAPTURE_SOURCE), opened
        whatever the allow-list says; any other must be within it (WATCHPOST_CAMERA_SOURCE_*)."""
        self.settings = settings
        self.redis = redis_client
        self.pool = pool
        self.source = source
        self.camera = camera_id or settings.capture_camera_id
        self.policy = None if trusted else settings.source_policy()
        self.keys = settings.keys
        self.tracker = FaceTracker(follow=self._follower())
        self.status: CameraStatus = CameraStatus.STARTING
        self.last_error: str | None = None
        self.frames_published = 0
        self.frames_read = 0  # decoded and processed, with faces or not
        self._seq = 0
        self._crop_counts: dict[str, int] = {}  # frames seen per track, to crop every N-th
        self._fps = 0.0
        self._status_retry_at = 0.0
        self._unsaved: tuple[CameraStatus, bool] | None = None  # a status not stored yet
        self._status_lock = threading.Lock()

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, burst: bool = False) -> int:
        """Play the source until `stop`; `burst`: play a file once, unpaced, then return."""
        self._register()
        while not stop.is_set():
            try:
                video = open_source(self.source, self.policy)
            except SourceError as exc:
                self._set_status(CameraStatus.ERROR, error=str(exc))
                log.error("camera %s: %s", self.camera, exc)
                if burst:
                    raise
                stop.wait(self.settings.capture_reconnect_seconds)
                continue
            self._set_status(CameraStatus.ONLINE)
            try:
                ended = self._play(video, stop, paced=self.settings.capture_realtime and not burst)
            finally:
                video.close()
            if burst or (ended and video.is_file and not self.settings.capture_loop):
                self._set_status(CameraStatus.ENDED if ended else CameraStatus.STOPPED)
                break
            if ended and not video.is_file:
                self._set_status(CameraStatus.OFFLINE, error="stream ended; reconnecting")
                stop.wait(self.settings.capture_reconnect_seconds)
        else:
            self._set_status(CameraStatus.STOPPED)
        return self.frames_published

    def _play(self, video: VideoSource, stop: threading.Event, *, paced: bool) -> bool:
        """Returns True when the source ran out, False when asked to stop."""
        self.tracker.reset()
        start = time.monotonic()
        index = 0
        window_start, window_frames = time.monotonic(), 0
        # A detection frame costs a few frames' time; catching up on the cheap tracked frames
        # after it loses nothing, so only a lag beyond this many frames is skipped.
        slack = max(1, round(self.settings.capture_max_lag_seconds * video.fps))
        while not stop.is_set():
            if paced and video.is_file:
                due = int((time.monotonic() - start) * video.fps)
                if due > index + slack:  # too far behind real time: skip without decoding
                    for _ in range(due - index - 1):
                        if not video.grab():
                            return True
                        FRAMES_SKIPPED.labels(self.camera).inc()
                    index = due - 1
                else:
                    wait = (index / video.fps) - (time.monotonic() - start)
                    if wait > 0:
                        stop.wait(wait)
            if not video.grab():
                return True
            index += 1
            bgr = video.retrieve()
            if bgr is None:
                return True
            self.process(
                bgr, source_time=index / video.fps if video.is_file else time.monotonic() - start
            )
            window_frames += 1
            elapsed = time.monotonic() - window_start
            if elapsed >= STATUS_EVERY_S:
                self._fps = window_frames / elapsed
                FPS.labels(self.camera).set(self._fps)
                window_start, window_frames = time.monotonic(), 0
                self._set_status(CameraStatus.ONLINE, frame_seen=True)
        return False

    def _follower(self) -> Follow | None:
        """BlazeFace's own step between its detections (`WATCHPOST_CAPTURE_FOLLOW`), else None:
        the tracker's correlation filters."""
        if (
            self.settings.capture_detector != "blazeface"
            or self.settings.capture_follow != "detector"
        ):
            return None
        network = self.settings.capture_blazeface_network

        def follow(rgb: np.ndarray, box: BoxTuple) -> BoxTuple | None:
            with MODEL_LOCK:
                return blazeface.follow_face(rgb, box, network=network)

        return follow

    # -- one frame ----------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray) -> list[BoxTuple]:
        """The configured detector's faces (`WATCHPOST_CAPTURE_DETECTOR`), as HOG-like boxes."""
        if self.settings.capture_detector == "blazeface":
            return blazeface.detect_faces(rgb, network=self.settings.capture_blazeface_network)
        return detect_faces(rgb, upsample=self.settings.capture_upsample)

    def process(self, bgr: np.ndarray, *, source_time: float) -> Frame | None:
        FRAMES_READ.labels(self.camera).inc()
        self.frames_read += 1
        captured_at = time.time()
        camera_bgr = bgr
        bgr = self._resize(bgr)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        seq = self._seq
        self._seq += 1
        detections = None
        if seq % self.settings.capture_detect_every == 0:
            with DETECT_SECONDS.labels(self.camera).time(), MODEL_LOCK:
                detections = [
                    b
                    for b in self.detect(rgb)
                    if min(b[2] - b[0], b[3] - b[1]) >= self.settings.capture_min_face
                ]
        tracked = self.tracker.update(rgb, detections)
        if seq % self.settings.capture_live_every == 0:
            self._publish_live(bgr, tracked)
        if not tracked:
            return None
        h, w = rgb.shape[:2]
        crops, pictures = self._crops(camera_bgr, w, tracked)
        frame = Frame(
            camera_id=self.camera,
            seq=seq,
            captured_at=captured_at,
            source_time=source_time,
            width=w,
            height=h,
            faces=[
                TrackedFace(
                    track_id=t.track_id,
                    box=Box.of(t.box),
                    detected=t.detected,
                )
                for t in tracked
            ],
            crops=crops,
        )
        ok, jpeg = cv2.imencode(
            ".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.settings.capture_jpeg_quality]
        )
        if not ok:
            return None
        try:
            publish(
                self.redis,
                self.keys.frames.of(frame.camera_id),  # the camera's shard
                frame,
                image=jpeg.tobytes(),
                attachments=pictures,
                maxlen=self.settings.capture_stream_maxlen,  # the deployment's own bound
            )
        except redis.RedisError as exc:
            # Frames are perishable: drop this one and keep the camera going.
            FRAMES_DROPPED.labels(self.camera).inc()
            self._note_error(f"redis: {exc}")
            return None
        FRAMES_PUBLISHED.labels(self.camera).inc()
        self.frames_published += 1
        return frame

    def _crops(
        self, camera_bgr: np.ndarray, width: int, tracked
    ) -> tuple[list[FaceCrop], dict[str, bytes]]:
        """Every `capture_crop_every`-th frame of a track, a square around its face cut from the
        camera's own frame (before scaling and the bus's JPEG): the passive attack check's
        evidence at camera resolution (moire, print dots and paper edges do not survive a
        640-px JPEG)."""
        every = self.settings.capture_crop_every
        if not every:
            return [], {}
        ch, cw = camera_bgr.shape[:2]
        scale = cw / width
        crops: list[FaceCrop] = []
        pictures: dict[str, bytes] = {}
        for t in tracked:
            count = self._crop_counts.get(t.track_id, 0)
            self._crop_counts[t.track_id] = count + 1
            left, top, right, bottom = (round(v * scale) for v in t.box)
            box = (left, top, right, bottom)
            if count % every or box[2] - box[0] < self.settings.capture_crop_min_face:
                continue
            crop = FaceCrop.around(t.track_id, box, cw, ch)
            left, top, right, bottom = crop.square.as_tuple()
            region = camera_bgr[top:bottom, left:right]
            side = self.settings.capture_crop_max_side
            if max(region.shape[:2]) > side:
                region = cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
            if not ok:
                continue
            crops.append(crop)
            pictures[crop.attachment] = jpeg.tobytes()
        if len(self._crop_counts) > MAX_CROP_TRACKS:  # forget tracks that ended
            live = {t.track_id for t in tracked}
            self._crop_counts = {k: v for k, v in self._crop_counts.items() if k in live}
        return crops, pictures

    def _publish_live(self, bgr: np.ndarray, tracked) -> None:
        """The frame with boxes and what the aggregator knows of each track, for the live view."""
        try:
            keys = [self.keys.track_label(self.camera, t.track_id) for t in tracked]
            labels = self.redis.mget(keys) if keys else []
            annotated = bgr.copy()
            for face, raw in zip(tracked, labels, strict=True):
                label = json.loads(raw) if raw else {}
                colour = LIVE_COLOURS.get(label.get("liveness", ""), (200, 200, 200))
                left, top, right, bottom = face.box
                cv2.rectangle(annotated, (left, top), (right - 1, bottom - 1), colour, 2)
                text = f"{label.get('name') or 'unknown'} | {label.get('liveness', 'checking')}"
                cv2.putText(
                    annotated,
                    text,
                    (left, max(12, top - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.45,
                    colour,
                    1,
                    cv2.LINE_AA,
                )
            ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 70])
            if ok:
                self.redis.set(self.keys.live_frame(self.camera), jpeg.tobytes(), ex=5)
        except redis.RedisError:
            pass  # the live view is a convenience; the frame itself went out above

    def _resize(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if w <= self.settings.capture_max_width:
            return bgr
        scale = self.settings.capture_max_width / w
        return cv2.resize(
            bgr, (self.settings.capture_max_width, round(h * scale)), interpolation=cv2.INTER_AREA
        )

    # -- status ---------------------------------------------------------------------------------
    def _register(self) -> None:
        if self.pool is None:
            return
        try:
            with self.pool.connection() as conn:
                cameras.upsert_camera(
                    conn, camera_id=self.camera, name=self.camera, source=self.source
                )
        except psycopg.Error as exc:
            log.warning("camera %s: could not register: %s", self.camera, exc)

    def _note_error(self, error: str) -> None:
        error = redact(error)
        if error != self.last_error:
            log.warning("camera %s: %s", self.camera, error)
        self.last_error = error

    def _set_status(
        self, status: CameraStatus, *, error: str | None = None, frame_seen: bool = False
    ) -> None:
        self.status = status
        if error:
            self.last_error = redact(error)  # it is stored and shown to viewers
        elif status == CameraStatus.ONLINE:
            self.last_error = None
        self._unsaved = (status, frame_seen)
        self.retry_status()

    def retry_status(self) -> None:
        """Store the latest status if it is not stored yet. Called on every change, and by the
        supervisor now and then, so a status reached while the database was away (a file that
        ended during an outage) is stored when it returns instead of being lost."""
        if self.pool is None or self._unsaved is None:
            return
        with self._status_lock:
            if self._unsaved is None or time.monotonic() < self._status_retry_at:
                return
            status, frame_seen = self._unsaved
            try:
                with self.pool.connection(timeout=1) as conn:
                    cameras.report_status(
                        conn,
                        camera_id=self.camera,
                        status=status,
                        fps=round(self._fps, 2),
                        frame_seen=frame_seen,
                        error=self.last_error,
                    )
                self._unsaved = None
            except psycopg.Error as exc:
                # Frames keep flowing meanwhile; try again in a few seconds, not every frame.
                self._status_retry_at = time.monotonic() + 5
                log.warning("camera %s: status not stored (%s); will retry", self.camera, exc)
