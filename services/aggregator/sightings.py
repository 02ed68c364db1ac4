"""Sightings: every identified track on record (who, where, first and last seen, best face,
liveness), grouping of unknown faces when a track ends, and impossible travel: the same person at
two cameras at once, or sooner than one can walk between them. A sighting is not an alarm;
impossible travel is (an alert of its own kind)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from services.aggregator.policy import (
    AlertPolicy,
    IdentityVote,
    TrackEvidence,
    check_quality,
    recognition_of,
    usable,
    vote_identity,
)
from watchpost.db import alerts, sightings
from watchpost.db.pool import Pool
from watchpost.images import ImageError, crop_jpeg, decode_jpeg, draw_box, sharpness
from watchpost.messages import AlertKind, LivenessVerdict, RecognitionVerdict
from watchpost.settings import AggregatorSettings

log = logging.getLogger(__name__)

SHARP_ENOUGH = 100.0  # Laplacian variance (images.sharpness) above which a face counts as sharp
SNAPSHOT_COLOUR = "#2563eb"
TRAVEL_COLOUR = "#0891b2"


@dataclass
class SightingState:
    """What the aggregator keeps of one track's sighting between writes."""

    first_seen: float | None = None
    last_seen: float | None = None
    unknown_sum: np.ndarray | None = None  # sum of the unknown checks' embeddings
    unknown_count: int = 0
    quality: float = 0.0  # face width, discounted when blurred
    best: RecognitionVerdict | None = None
    best_frame: bytes | None = None
    images_dirty: bool = False
    sighting_id: int | None = None
    written: tuple | None = None  # (identity, liveness) last written
    written_at: float = 0.0
    travel_raised: bool = False
    erased: bool = False  # the person was erased while the track lasted: keep no record
    ended: bool = False

    def mean_unknown(self) -> np.ndarray | None:
        """The mean embedding of the track's unknown checks (None: it had none)."""
        if self.unknown_sum is None or not self.unknown_count:
            return None
        return np.asarray(self.unknown_sum / self.unknown_count)

    def see(self, at: float | None) -> None:
        if at is None:
            return
        self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
        self.last_seen = at if self.last_seen is None else max(self.last_seen, at)


def face_quality(frame: bytes, verdict: RecognitionVerdict) -> float:
    """The face's width in pixels, discounted in proportion when it is blurred."""
    box = verdict.box.as_tuple()
    try:
        score = sharpness(decode_jpeg(frame), box)
    except (ImageError, ValueError, OSError):
        return 0.0
    return verdict.box.width * min(1.0, score / SHARP_ENOUGH)


class SightingRecorder:
    def __init__(
        self,
        settings: AggregatorSettings,
        *,
        redis_client: redis.Redis,
        pool: Pool,
        publish_alert: Callable[[dict, bool], None],
        policy: AlertPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or AlertPolicy()
        self.redis = redis_client
        self.pool = pool
        self.keys = settings.keys
        self.publish_alert = publish_alert  # (stored alert row, created now)

    def observe(
        self,
        state: SightingState,
        evidence: TrackEvidence,
        verdict: RecognitionVerdict | LivenessVerdict,
        image: bytes | None,
    ) -> None:
        """Take in a verdict of the track (already in `evidence`); write the sighting when due.
        Only evidence counts: checks on a box the detector found that pass the access quality
        gates (`policy.usable`) name the sighting, make its unknown embedding and give its best
        face; a track without one leaves no sighting."""
        if isinstance(verdict, RecognitionVerdict):
            state.see(verdict.captured_at)
            if check_quality(recognition_of(verdict), self.policy) is not None:
                self._take_evidence(state, verdict, image)
        else:
            state.see(verdict.captured_at)
        vote = self.vote(evidence)
        if vote is None or state.erased:
            return
        due = (
            state.sighting_id is None
            or state.written != (vote.identity_id, evidence.liveness)
            or time.monotonic() - state.written_at
            >= self.settings.aggregator_sighting_update_seconds
        )
        if due:
            self.write(state, evidence)

    def resume(
        self,
        state: SightingState,
        verdict: RecognitionVerdict | LivenessVerdict,
        image: bytes | None,
    ) -> None:
        """Take in a verdict handled before (replayed when a replica takes a shard over),
        writing nothing: the next verdict, or the track's end, writes the sighting, which is
        one row per (camera, track) and so updated, not duplicated."""
        state.see(verdict.captured_at)
        if (
            isinstance(verdict, RecognitionVerdict)
            and check_quality(recognition_of(verdict), self.policy) is not None
        ):
            self._take_evidence(state, verdict, image)

    def _take_evidence(
        self, state: SightingState, verdict: RecognitionVerdict, image: bytes | None
    ) -> None:
        """A usable check: into the unknown mean, and a candidate for the best face."""
        if verdict.identity_id is None and verdict.embedding is not None:
            vector = np.asarray(verdict.embedding, np.float32)
            state.unknown_sum = vector if state.unknown_sum is None else state.unknown_sum + vector
            state.unknown_count += 1
        if image is not None and verdict.box.width > state.quality:  # else it cannot win
            quality = face_quality(image, verdict)
            if quality > state.quality or state.best is None:
                state.quality, state.best, state.best_frame = quality, verdict, image
                state.images_dirty = True

    def end(self, state: SightingState, evidence: TrackEvidence) -> None:
        """The track is over: write the sighting a last time, and group it if it is unknown."""
        vote = self.vote(evidence)
        if state.ended or state.erased or vote is None:
            return
        row = self.write(state, evidence, ended=True)
        mean = state.mean_unknown()
        if (
            row is not None
            and vote.identity_id is None
            and mean is not None
            and vote.votes >= self.settings.aggregator_unknown_min_checks
        ):
            with self.pool.connection() as conn:
                group = sightings.assign_group(
                    conn,
                    row["id"],
                    mean,
                    max_distance=self.settings.aggregator_unknown_group_distance,
                )
            log.info("sighting %s joined unknown group %s", row["id"], group)
        state.ended = True

    def finish_orphans(self) -> int:
        """End the sightings an aggregator left open (stopped or crashed mid-track), grouping
        unknown ones by the embedding they were stored with. Returns how many were ended."""
        settings = self.settings
        idle = 2 * settings.aggregator_track_timeout_seconds + (
            settings.aggregator_sighting_update_seconds
        )
        with self.pool.connection() as conn:
            rows = sightings.unfinished(conn, idle_seconds=idle)
            for row in rows:
                if (
                    row["identity_id"] is None
                    and row["embedding"] is not None
                    and row["votes"] >= settings.aggregator_unknown_min_checks
                ):
                    sightings.assign_group(
                        conn,
                        row["id"],
                        np.asarray(row["embedding"], np.float32),
                        max_distance=settings.aggregator_unknown_group_distance,
                    )
                sightings.mark_ended(conn, row["id"])
        return len(rows)

    def merge_groups(self) -> list[tuple[int, list[int]]]:
        """Housekeeping: merge unnamed groups whose centroids are within the group distance
        (one stranger whose tracks started a group each). Returns (kept, merged into it)."""
        with self.pool.connection() as conn:
            merged = sightings.merge_close_groups(
                conn, max_distance=self.settings.aggregator_unknown_group_distance
            )
        for kept, gone in merged:
            log.info("unknown groups %s merged into group %s", gone, kept)
        return merged

    def vote(self, evidence: TrackEvidence) -> IdentityVote | None:
        """Who the track's evidence names (None: no usable check yet, so no sighting)."""
        return vote_identity(usable(evidence.recognitions, self.policy))

    def write(
        self, state: SightingState, evidence: TrackEvidence, *, ended: bool = False
    ) -> dict | None:
        vote = self.vote(evidence)
        # A vote needs a usable recognition verdict, which always brings its frame and time.
        assert vote is not None and state.best is not None and state.best_frame is not None
        assert state.first_seen is not None and state.last_seen is not None
        shot = state.best
        images: dict = {}
        if state.images_dirty:
            box = shot.box.as_tuple()
            images = {
                "snapshot_jpeg": draw_box(state.best_frame, box, "", SNAPSHOT_COLOUR),
                "face_jpeg": crop_jpeg(state.best_frame, box),
                "face_width": shot.box.width,
                "quality": state.quality,
                "box": box,
            }
        with self.pool.connection() as conn:
            row = sightings.upsert_sighting(
                conn,
                camera_id=shot.camera_id,
                track_id=shot.track_id,
                identity_id=vote.identity_id,
                first_seen=state.first_seen,
                last_seen=state.last_seen,
                checks=vote.total,
                votes=vote.votes,
                best_distance=vote.best_distance,
                liveness=evidence.liveness,
                ended=ended,
                embedding=state.mean_unknown() if vote.identity_id is None else None,
                **images,
            )
        state.written_at = time.monotonic()
        state.written = (vote.identity_id, evidence.liveness)
        if row is None:  # the person was erased meanwhile
            state.erased = True
            return None
        state.sighting_id, state.images_dirty = row["id"], False
        if vote.identity_id is not None and not state.travel_raised:
            self._check_travel(state, row)
        return row

    # -- impossible travel ----------------------------------------------------------------------
    def _check_travel(self, state: SightingState, row: dict) -> None:
        settings = self.settings
        if row["votes"] < settings.aggregator_travel_min_checks:
            return
        longest = max(
            [
                settings.aggregator_travel_default_seconds,
                *settings.aggregator_travel_seconds.values(),
            ]
        )
        first, last = row["first_seen"].timestamp(), row["last_seen"].timestamp()
        with self.pool.connection() as conn:
            others = sightings.near_in_time(
                conn,
                identity_id=row["identity_id"],
                other_than_camera=row["camera_id"],
                since=first - longest,
                until=last + longest,
            )
        for other in others:
            if other["votes"] < settings.aggregator_travel_min_checks:
                continue
            needed = settings.travel_seconds(row["camera_id"], other["camera_id"])
            if needed < 0:  # the two cameras see the same place
                continue
            # Seconds from one sighting's end to the other's start; negative when they overlap.
            gap = max(
                first - other["last_seen"].timestamp(), other["first_seen"].timestamp() - last
            )
            if gap < needed - settings.aggregator_travel_tolerance_seconds:
                self._raise_travel(state, row, other, gap=gap, needed=needed)
                return

    def _raise_travel(
        self, state: SightingState, row: dict, other: dict, *, gap: float, needed: float
    ) -> None:
        state.travel_raised = True
        cooldown = self.keys.cooldown(f"impossible_travel:any:{row['identity_id']}")
        if self.redis.exists(cooldown):
            log.info("impossible_travel for sighting %s held back by its cool-down", row["id"])
            return
        if gap < 0:
            reason = (
                f"seen at cameras {other['camera_id']!r} and {row['camera_id']!r} at once "
                f"({-gap:.1f} s overlap)"
            )
        else:
            reason = (
                f"seen at camera {other['camera_id']!r}, then at {row['camera_id']!r} "
                f"{gap:.1f} s later; getting there takes at least {needed:.0f} s"
            )
        shot, frame = state.best, state.best_frame
        assert shot is not None and frame is not None  # travel is checked after a write
        box = shot.box.as_tuple()
        with self.pool.connection() as conn:
            alert, created = alerts.upsert_alert(
                conn,
                kind=AlertKind.IMPOSSIBLE_TRAVEL,
                camera_id=row["camera_id"],
                track_id=row["track_id"],
                captured_at=shot.captured_at,
                identity_id=row["identity_id"],
                display_name=row["display_name"],
                distance=row["best_distance"],
                liveness=row["liveness"],
                reason=reason,
                details={
                    "box": list(box),
                    "frame_seq": shot.frame_seq,
                    "gap_seconds": gap,
                    "travel_seconds": needed,
                    "sighting": sightings.details(row),
                    "other_sighting": sightings.details(other),
                    "evidence_at": row["last_seen"].timestamp(),
                },
                snapshot_jpeg=draw_box(frame, box, "impossible_travel", TRAVEL_COLOUR),
                face_jpeg=crop_jpeg(frame, box),
            )
        self.publish_alert(alert, created)
        seconds = self.settings.aggregator_cooldowns.get(AlertKind.IMPOSSIBLE_TRAVEL, 0)
        if seconds > 0:
            self.redis.set(cooldown, alert["id"], ex=max(1, round(seconds)))
