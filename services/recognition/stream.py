"""Identify tracked faces from the frame stream and publish a verdict per check.

A track is embedded when it first appears and re-checked every `recognition_recheck_seconds`
until it has had `recognition_max_checks` verdicts; never on every frame, since one embedding
costs 35-135 ms here.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import cast

import redis
from prometheus_client import Counter, Gauge, Histogram

from services.recognition.gallery import Gallery
from watchpost.db import identities
from watchpost.db.pool import Pool
from watchpost.images import decode_jpeg, sharpness
from watchpost.keys import Keys
from watchpost.messages import Frame, RecognitionVerdict
from watchpost.settings import RecognitionSettings
from watchpost.streams import Delivery, publish
from watchpost.vision.faces import embed_face_with_pose

log = logging.getLogger(__name__)

EMBED_SECONDS = Histogram("watchpost_recognition_embed_seconds", "One 128-d embedding")
STALE_FRAMES = Counter("watchpost_recognition_stale_frames_total", "Frames skipped as too old")
VERDICTS = Counter("watchpost_recognition_verdicts_total", "Verdicts published", ["result"])
GALLERY_SIZE = Gauge("watchpost_recognition_gallery_embeddings", "Embeddings in memory")

MAX_TRACKS = 10_000


def face_sharpness(rgb, box: tuple[int, int, int, int]) -> float:
    """The face's sharpness, on the part of its box inside the frame (0 when none is)."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if right - left < 2 or bottom - top < 2:
        return 0.0
    return sharpness(rgb, (left, top, right, bottom))


@dataclass
class _TrackChecks:
    count: int = 0
    last_at: float = 0.0  # source time of the last check (video position or camera uptime)
    known: bool = False


class GalleryHolder:
    """The current gallery, reloaded from Postgres when the shared version key moves."""

    def __init__(self, pool: Pool, redis_client: redis.Redis, keys: Keys, *, k: int = 1) -> None:
        self.k = k  # identities are scored by the mean of their k nearest samples
        self.pool = pool
        self.redis = redis_client
        self.keys = keys
        self.gallery = Gallery.empty(k=k)
        self.version: bytes | None = b"unloaded"
        self._lock = threading.Lock()

    def reload(self) -> None:
        """`refresh`, as the worker's housekeeping."""
        self.refresh()

    def refresh(self, *, force: bool = False) -> Gallery:
        """Reload when the version moved. The version is read on every call (one Redis GET,
        against an 80 ms embedding): throttling it let a gallery loaded halfway through an
        enrolment stand for a second, and an enrolled person's first checks called them a
        stranger."""
        with self._lock:
            version = cast(bytes | None, self.redis.get(self.keys.gallery_version))
            if force or version != self.version:
                with self.pool.connection() as conn:
                    matrix, ids, names = identities.load_gallery(conn)
                self.gallery = Gallery(matrix, ids, names, k=self.k)
                self.version = version
                GALLERY_SIZE.set(len(self.gallery))
                log.info(
                    "gallery loaded: %d embeddings of %d identities",
                    len(self.gallery),
                    self.gallery.identity_count,
                )
        return self.gallery


class FrameRecognizer:
    def __init__(
        self, settings: RecognitionSettings, *, redis_client: redis.Redis, gallery: GalleryHolder
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = Keys(settings.stream_prefix)
        self.gallery = gallery
        self._tracks: OrderedDict[tuple[str, str], _TrackChecks] = OrderedDict()

    def handle(self, delivery: Delivery[Frame]) -> None:
        frame = delivery.message
        if frame.is_stale(self.settings.frame_max_age_seconds):
            STALE_FRAMES.inc()
            return
        due = [
            face
            for face in frame.faces
            if self._due(frame.camera_id, face.track_id, frame.source_time, face.detected)
        ]
        if not due:
            return
        gallery = self.gallery.refresh()
        rgb = decode_jpeg(delivery.picture)
        for face in due:
            with EMBED_SECONDS.time():
                embedding, yaw = embed_face_with_pose(rgb, face.box.as_tuple())
            match = gallery.identify(embedding, threshold=self.settings.recognition_threshold)
            verdict = RecognitionVerdict(
                camera_id=frame.camera_id,
                track_id=face.track_id,
                frame_seq=frame.seq,
                captured_at=frame.captured_at,
                box=face.box,
                identity_id=match.identity_id,
                display_name=match.display_name,
                distance=match.distance,
                runner_up_distance=match.runner_up_distance,
                threshold=self.settings.recognition_threshold,
                embedding=None if match.identity_id else [float(x) for x in embedding],
                # The quality the aggregator's access gates read.
                detected=face.detected,
                sharpness=face_sharpness(rgb, face.box.as_tuple()),
                yaw=yaw,
            )
            publish(
                self.redis,
                self.keys.verdicts,
                verdict,
                image=delivery.picture,
            )
            VERDICTS.labels("known" if match.identity_id else "unknown").inc()
            self._checked(
                frame.camera_id, face.track_id, frame.source_time, match.identity_id is not None
            )

    def _due(self, camera_id: str, track_id: str, at: float, detected: bool) -> bool:
        """Embed a new track now; re-check a track nobody matched soon, a known one rarely.
        A re-check waits for a box the detector confirmed in that frame (the next detection
        round, a few frames on): only those count as evidence for access, and a tracker-only
        box may have drifted off the face."""
        checks = self._tracks.get((camera_id, track_id))
        if checks is None:
            return True
        if not detected:
            return False
        if checks.count >= self.settings.recognition_max_checks:
            return False
        interval = (
            self.settings.recognition_recheck_seconds
            if checks.known
            else self.settings.recognition_recheck_unknown_seconds
        )
        return at - checks.last_at >= interval

    def _checked(self, camera_id: str, track_id: str, at: float, known: bool) -> None:
        key = (camera_id, track_id)
        checks = self._tracks.pop(key, None) or _TrackChecks()
        checks.count += 1
        checks.last_at = at
        checks.known = known
        self._tracks[key] = checks
        while len(self._tracks) > MAX_TRACKS:
            self._tracks.popitem(last=False)
