"""Identify tracked faces from the frame stream and publish a verdict per check.

A track is embedded when it first appears and re-checked every `recognition_recheck_seconds`
until it has had `recognition_max_checks` verdicts; never on every frame, since one embedding
costs 35-135 ms here.

Which tracks were checked when is per (camera, track) in this process: a replica that takes a
shard over rebuilds it from the shard's recent frames and the verdicts published for them
(`take_over`), so a track is not checked again, nor a verdict published twice, because its
replica changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import psycopg
import redis
from prometheus_client import Counter, Gauge, Histogram

from services.recognition.gallery import Gallery, IndexSettings
from watchpost.db import identities
from watchpost.db.pool import Pool
from watchpost.images import decode_jpeg, sharpness
from watchpost.keys import Keys, shard_of
from watchpost.messages import Frame, GalleryChange, MessageError, RecognitionVerdict, decode
from watchpost.settings import RecognitionSettings
from watchpost.streams import Delivery, publish
from watchpost.vision.faces import embed_face_with_pose

log = logging.getLogger(__name__)

EMBED_SECONDS = Histogram("watchpost_recognition_embed_seconds", "One 128-d embedding")
STALE_FRAMES = Counter("watchpost_recognition_stale_frames_total", "Frames skipped as too old")
VERDICTS = Counter("watchpost_recognition_verdicts_total", "Verdicts published", ["result"])
GALLERY_SIZE = Gauge("watchpost_recognition_gallery_embeddings", "Embeddings in memory")
LOAD_SECONDS = Gauge("watchpost_recognition_gallery_load_seconds", "Last full gallery load")

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
    """The current gallery, kept in step with PostgreSQL one identity at a time.

    The first load (`load`, binary COPY) runs in the background; until it is done `loaded`
    is false, `/readyz` says so, and the frame handler waits for it (`ensure_loaded`) rather
    than call everyone a stranger. After that, `refresh` (before every embedding) reads the
    version key (one GET); when it moved, it reads the change log from where it left off,
    re-reads each identity named there (its samples, or its absence: an erased person leaves
    at once), and adds any sample with an id above the highest seen (writers that only move
    the version). A change log trimmed past its place, or a count that disagrees with
    PostgreSQL (`reconcile`), starts a full reload in the background; deltas go on meanwhile
    and are replayed onto the new gallery.
    """

    def __init__(
        self,
        pool: Pool,
        redis_client: redis.Redis,
        keys: Keys,
        *,
        k: int = 1,
        index: IndexSettings | None = None,
    ) -> None:
        self.k = k  # identities are scored by the mean of their k nearest samples
        self.index = index
        self.pool = pool
        self.redis = redis_client
        self.keys = keys
        self.gallery = Gallery.empty(k=k, index=index)
        self.version: bytes | None = b"unloaded"
        self.cursor = "0-0"  # the last change-log entry applied
        self.log_added: int | None = 0  # entries the log had had when last read (None: unknown)
        self.last_sample_id = -1  # the highest sample id ever seen
        self._loaded = threading.Event()
        self._lock = threading.Lock()
        self._reloading = threading.Lock()  # one full reload at a time
        self.reload_thread: threading.Thread | None = None  # the last background reload

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    def ensure_loaded(self) -> None:
        """Load now unless done; waits for a load under way instead of starting another."""
        if not self._loaded.is_set():
            self.load(only_if_unloaded=True)

    def load(self, *, only_if_unloaded: bool = False) -> Gallery:
        """Read every sample (binary) into a new gallery and swap it in; changes committed
        while it was read are replayed from the change log (re-reading an identity is
        idempotent, so one seen twice costs nothing)."""
        with self._reloading:
            if only_if_unloaded and self._loaded.is_set():
                return self.gallery
            started = time.perf_counter()
            _, added, cursor, _ = self._read_log("+")  # the log's end, before the snapshot
            with self.pool.connection() as conn:
                snapshot = identities.load_gallery_binary(conn)
            gallery = Gallery(
                snapshot.embeddings,
                snapshot.identity_ids,
                snapshot.names,
                k=self.k,
                sample_ids=snapshot.sample_ids,
                index=self.index,
            )
            with self._lock:
                self.gallery = gallery
                self.cursor = cursor
                self.log_added = added
                self.last_sample_id = max(self.last_sample_id, gallery.max_sample_id)
                self.version = b"\0reloaded"  # catch up now, whatever the key says
                self._catch_up()
            self._loaded.set()
            LOAD_SECONDS.set(time.perf_counter() - started)
            log.info(
                "gallery loaded in %.1f s: %d embeddings of %d identities%s",
                time.perf_counter() - started,
                len(gallery),
                gallery.identity_count,
                " (approximate index)" if gallery.approximate else "",
            )
            return gallery

    def reload(self) -> None:
        """`refresh`, as the worker's housekeeping."""
        self.refresh()

    def refresh(self, *, force: bool = False) -> Gallery:
        """The gallery with every committed change applied. `force`: a full reload now."""
        if force:
            return self.load()
        self.ensure_loaded()
        with self._lock:
            self._catch_up()
            return self.gallery

    def _catch_up(self) -> None:
        version = cast(bytes | None, self.redis.get(self.keys.gallery_version))
        if version == self.version:
            return
        entries, added, _, first = self._read_log(f"({self.cursor}")
        # Entries ever added = those seen before + those read now, unless some this replica
        # never read were trimmed (or Redis lost the stream): then only a full reload is safe.
        if added is not None and self.log_added is not None:
            lost = added != self.log_added + len(entries)
        else:  # Redis before 7 (the embedded one) does not count: the oldest entry tells
            lost = self.cursor != "0-0" and (added == 0 or _id_after(first, self.cursor))
        if lost:
            log.warning("gallery change log lost entries past %s: reloading in full", self.cursor)
            self.reload_in_background()
        self.log_added = added
        changed: dict[int, None] = {}  # in order, once each
        for entry_id, fields in entries:
            try:
                changed[decode(fields, GalleryChange)[0].identity_id] = None
            except MessageError as exc:  # not ours: only a full reload is sure to be right
                log.warning("gallery change %s unreadable (%s): reloading in full", entry_id, exc)
                self.reload_in_background()
        with self.pool.connection() as conn:
            for identity in changed:
                name, embeddings, sample_ids = identities.identity_gallery_rows(conn, identity)
                self.gallery.replace_identity(identity, name, embeddings, sample_ids)
                if len(sample_ids):
                    self.last_sample_id = max(self.last_sample_id, int(sample_ids.max()))
            while True:
                new = identities.samples_after(conn, self.last_sample_id)
                if not len(new.sample_ids):
                    break
                self.gallery.add_samples(
                    new.identity_ids, new.names, new.embeddings, new.sample_ids
                )
                self.last_sample_id = int(new.sample_ids.max())
        if entries:
            self.cursor = _entry_id(entries[-1][0])
        self.version = version
        GALLERY_SIZE.set(len(self.gallery))
        if changed:
            log.info("gallery: %d identities re-read", len(changed))

    def _read_log(self, start: str) -> tuple[list, int | None, str, str | None]:
        """Change-log entries from `start`, how many entries the log ever had (None where Redis
        does not say: before 7.0), its last entry's id and its oldest one's, read at one instant
        (MULTI)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xrange(self.keys.gallery_changes, min=start, max="+")
        pipe.xinfo_stream(self.keys.gallery_changes)
        entries, info = pipe.execute(raise_on_error=False)
        if isinstance(info, redis.ResponseError):  # no change yet: no stream
            return [], 0, "0-0", None
        if isinstance(entries, Exception):
            raise entries
        added = int(info["entries-added"]) if "entries-added" in info else None
        oldest = info.get("first-entry")
        first = _entry_id(oldest[0]) if oldest else None
        return entries, added, _entry_id(info["last-generated-id"]), first

    def reload_in_background(self) -> None:
        if not self._reloading.locked():
            self.reload_thread = threading.Thread(
                target=self.load, name="gallery-reload", daemon=True
            )
            self.reload_thread.start()

    def reconcile(self) -> bool:
        """Compare the sample count and id sum with PostgreSQL; on a difference (a change whose
        notice was lost, e.g. Redis away just after a commit) reload in the background. True
        when they agreed."""
        if not self.loaded:
            return True
        with self._lock:
            self._catch_up()
            held = self.gallery.sample_summary()
        with self.pool.connection() as conn:
            stored = identities.sample_summary(conn)
        if stored == held:
            return True
        # A change may have landed between the two reads: look again before reloading.
        with self._lock:
            self._catch_up()
            held = self.gallery.sample_summary()
        with self.pool.connection() as conn:
            stored = identities.sample_summary(conn)
        if stored != held:
            log.warning("gallery disagrees with PostgreSQL (%s vs %s): reloading", held, stored)
            self.reload_in_background()
        return stored == held

    def run(self, stop: threading.Event, *, reconcile_every_s: float = 60.0) -> None:
        """The gallery's loop: load (retrying while PostgreSQL or Redis is away), then
        reconcile now and then."""
        delay = 1.0
        while not stop.is_set() and not self.loaded:
            try:
                self.ensure_loaded()
            except (psycopg.Error, redis.RedisError) as exc:
                log.warning("gallery load failed (%s); retrying in %.0f s", exc, delay)
                stop.wait(delay)
                delay = min(30.0, delay * 2)
        while not stop.wait(reconcile_every_s):
            try:
                self.reconcile()
            except (psycopg.Error, redis.RedisError) as exc:
                log.warning("gallery reconcile failed: %s", exc)


def _entry_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _id_after(entry_id: str | None, cursor: str) -> bool:
    """True when stream entry `entry_id` comes after `cursor` (ids are `<ms>-<seq>`)."""
    if entry_id is None:
        return False
    return tuple(map(int, entry_id.split("-"))) > tuple(map(int, cursor.split("-")))


class FrameRecognizer:
    def __init__(
        self, settings: RecognitionSettings, *, redis_client: redis.Redis, gallery: GalleryHolder
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = settings.keys
        self.gallery = gallery
        self._tracks: OrderedDict[tuple[str, str], _TrackChecks] = OrderedDict()
        # Verdicts already on the stream, by (camera, track, frame seq) -> known, for frames a
        # replica that took their shard over handles again (they were pending when it died).
        self._published: dict[tuple[str, str, int], bool] = {}

    def take_over(self, shard: int, replay: Sequence[Delivery[Frame]]) -> None:
        """This replica now owns `shard`: which of its tracks were checked when, from the
        shard's recent frames already handled and the verdicts their checks published."""
        self.give_up(shard)
        now_s, now_us = self.redis.time()
        start_ms = int(now_s * 1000 + now_us // 1000 - self.settings.shard_replay_seconds * 1000)
        found: dict[tuple[str, str, int], bool] = {}
        start = f"{max(0, start_ms)}-0"
        stream = self.keys.verdicts.shard(shard)
        while True:
            entries = cast(list, self.redis.xrange(stream, min=start, max="+", count=500))
            for _, fields in entries:
                if fields.get(b"type") != b"RecognitionVerdict":
                    continue
                try:
                    verdict = decode(fields, RecognitionVerdict)[0]
                except MessageError:
                    continue
                key = (verdict.camera_id, verdict.track_id, verdict.frame_seq)
                found[key] = verdict.identity_id is not None
            if len(entries) < 500:
                break
            start = "(" + entries[-1][0].decode()
        for delivery in replay:
            frame = delivery.message
            for face in frame.faces:
                known = found.pop((frame.camera_id, face.track_id, frame.seq), None)
                if known is not None:
                    self._checked(frame.camera_id, face.track_id, frame.source_time, known)
        self._published.update(found)  # left: verdicts of frames still pending

    def give_up(self, shard: int) -> None:
        """Forget the shard's tracks."""
        mine = self.keys.shards
        for key in [k for k in self._tracks if shard_of(k[0], mine) == shard]:
            del self._tracks[key]
        for done in [k for k in self._published if shard_of(k[0], mine) == shard]:
            del self._published[done]

    def handle(self, delivery: Delivery[Frame]) -> None:
        frame = delivery.message
        self.gallery.ensure_loaded()  # nobody is a stranger to a gallery not yet read
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
        already = [f for f in due if (frame.camera_id, f.track_id, frame.seq) in self._published]
        for face in already:  # checked before its replica died; its verdict is out
            known = self._published.pop((frame.camera_id, face.track_id, frame.seq))
            self._checked(frame.camera_id, face.track_id, frame.source_time, known)
        due = [f for f in due if f not in already]
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
                self.keys.verdicts.of(frame.camera_id),  # the frame's shard number
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
