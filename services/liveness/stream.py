"""Read every tracked face of every frame (landmarks, EAR, eye-state CNN; the motion and edge
attack cues; the passive attack check on the camera-resolution crops capture sends every few
frames), keep per-track evidence, and publish a liveness verdict whenever a track's verdict,
blink count or flagged cues change.

State is per (camera, track) in this process: a camera's frames are on one shard, which one
replica owns at a time (watchpost/shards.py). A replica that takes a shard over rebuilds the
state of its cameras by reading the shard's recent, already handled frames again without
publishing (`take_over`); see docs/architecture.md (scale-out).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import redis
from prometheus_client import Counter, Histogram

from services.liveness.blink import BlinkDetector
from services.liveness.calibration import SiteCalibration
from services.liveness.cues import context_motion, frame_edges
from services.liveness.evidence import EvidenceReader
from services.liveness.timing import HISTORY_FRAMES, MOTION_LAG_S, MOTION_MAX_LAG_S
from services.liveness.verdict import Judgement, LivenessPolicy, TrackEvidence, decide
from watchpost.images import decode_jpeg, to_grey
from watchpost.keys import shard_of
from watchpost.messages import Frame, LivenessVerdict
from watchpost.settings import LivenessSettings
from watchpost.streams import Delivery, entry_ms, publish

log = logging.getLogger(__name__)

STALE_FRAMES = Counter("watchpost_liveness_stale_frames_total", "Frames skipped as too old")
VERDICTS = Counter("watchpost_liveness_verdicts_total", "Verdicts published", ["state"])
FRAME_SECONDS = Histogram("watchpost_liveness_frame_seconds", "Evidence reading per frame")
MAX_TRACKS = 2_000


class LivenessTracker:
    def __init__(self, settings: LivenessSettings, *, redis_client: redis.Redis) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = settings.keys
        self.reader = EvidenceReader(settings)
        self.policy = self.reader.policy
        # Each camera's own passive threshold, fitted on its tracks judged live on a blink; off
        # when the passive check is, or when the threshold is pinned by a setting.
        self.calibration: SiteCalibration | None = None
        if (
            settings.liveness_site_calibration
            and self.reader.passive is not None
            and settings.liveness_spoof_threshold is None
        ):
            self.calibration = SiteCalibration(
                redis_client,
                self.keys,
                global_threshold=self.policy.spoof_threshold,
                target_bpcer=settings.liveness_site_target_bpcer,
                min_presentations=settings.liveness_site_min_presentations,
                window=settings.liveness_site_window,
            )
        self.tracks: dict[tuple[str, str], TrackEvidence] = {}
        # Recent grey frames per camera (source time, pixels) for the motion cue.
        self.history: dict[str, deque[tuple[float, np.ndarray]]] = {}
        # Held while reading a frame again at a take-over (the service's model lock: the
        # stream handler holds it too, and HTTP routes share the models).
        self.model_lock: AbstractContextManager[object] = nullcontext()

    def handle(self, delivery: Delivery[Frame]) -> None:
        self._read(delivery, emit=True)

    def take_over(self, shard: int, replay: Sequence[Delivery[Frame]]) -> None:
        """This replica now owns `shard`: rebuild its cameras' tracks from frames another
        replica (or this one, earlier) already handled, publishing nothing; the verdicts they
        led to are on the verdicts stream already."""
        self.give_up(shard)
        for delivery in self._still_going(replay):
            with self.model_lock:
                self._read(delivery, emit=False)

    def _still_going(self, replay: Sequence[Delivery[Frame]]) -> list[Delivery[Frame]]:
        """The frames of tracks seen within the track timeout of the newest frame: the others
        are over (they would expire at once), and reading frames costs ~30 ms each."""
        if not replay:
            return []
        newest = entry_ms(replay[-1].entry_id)
        cutoff = newest - self.settings.liveness_track_timeout_seconds * 1000
        going = {
            (d.message.camera_id, face.track_id)
            for d in replay
            if entry_ms(d.entry_id) >= cutoff
            for face in d.message.faces
        }
        return [
            d
            for d in replay
            if any((d.message.camera_id, face.track_id) in going for face in d.message.faces)
        ]

    def give_up(self, shard: int) -> None:
        """Forget the tracks and frames of the shard's cameras."""
        mine = self.keys.shards
        for key in [k for k in self.tracks if shard_of(k[0], mine) == shard]:
            del self.tracks[key]
        for camera in [c for c in self.history if shard_of(c, mine) == shard]:
            del self.history[camera]

    def _read(self, delivery: Delivery[Frame], *, emit: bool) -> None:
        frame = delivery.message
        if emit and frame.is_stale(self.settings.frame_max_age_seconds):
            STALE_FRAMES.inc()
            return
        with FRAME_SECONDS.time():
            rgb = decode_jpeg(delivery.picture)
            grey = to_grey(rgb)
            boxes = [face.box.as_tuple() for face in frame.faces]
            tracks = [self._evidence(frame, face.track_id) for face in frame.faces]
            self._observe_passive(frame, delivery.attachments, tracks)
            before = self._frame_before(frame, grey)
            for face, box, evidence in zip(frame.faces, boxes, tracks, strict=True):
                if before is not None:
                    evidence.cues.observe_motion(
                        context_motion(before, grey, box), frame.source_time
                    )
                if face.detected:  # edges need the face where it is, not where it was
                    evidence.cues.observe_edges(frame_edges(grey, box))
            readings = self.reader.read_eyes(grey, boxes)
            for face, evidence, reading in zip(frame.faces, tracks, readings, strict=True):
                evidence.observe(frame.source_time, reading.ear, reading.problem, reading.p_closed)
                # Landmarks on a box the tracker only predicted say where the box is, not how
                # the face moved: the parallax cue reads detected faces only.
                if face.detected:
                    evidence.parallax.observe(frame.source_time, reading.landmarks)
        for face, evidence in zip(frame.faces, tracks, strict=True):
            judgement = self._publish_if_changed(frame, face.track_id, evidence, emit=emit)
            self._calibrate(frame.camera_id, evidence, judgement, emit=emit)

    def policy_for(self, camera_id: str) -> LivenessPolicy:
        """The policy with the camera's own passive threshold once it has one."""
        if self.calibration is None:
            return self.policy
        site = self.calibration.threshold(camera_id)
        if not site.calibrated:
            return self.policy
        return dataclasses.replace(
            self.policy,
            spoof_threshold=site.threshold,
            passive_site_presentations=site.presentations,
        )

    def _calibrate(
        self, camera_id: str, evidence: TrackEvidence, judgement: Judgement, *, emit: bool = True
    ) -> None:
        """A track judged live on a blink, with no attack cue flagged and enough passive
        readings, is one real presentation of this camera: its mean passive score goes (once)
        into the camera's calibration."""
        if (
            self.calibration is None
            or evidence.calibration_recorded
            or judgement.state != "live"
            or any(c.flagged for c in judgement.cues)
            or len(evidence.passive) < self.policy.min_passive
        ):
            return
        score = evidence.mean_passive
        assert score is not None
        if emit:  # replayed at a take-over: it was recorded the first time
            self.calibration.record(camera_id, score)
        evidence.calibration_recorded = True

    def _observe_passive(
        self, frame: Frame, pictures: dict[str, bytes], tracks: list[TrackEvidence]
    ) -> None:
        """Score the camera-resolution crops capture sent with this frame."""
        by_track = {face.track_id: t for face, t in zip(frame.faces, tracks, strict=True)}
        scored = [(by_track[c.track_id], decode_jpeg(pictures[c.attachment])) for c in frame.crops]
        scores = self.reader.passive_scores([crop for _, crop in scored])
        for (evidence, _), score in zip(scored, scores, strict=True):
            evidence.observe_passive(score)

    def _frame_before(self, frame: Frame, grey: np.ndarray) -> np.ndarray | None:
        """This camera's frame about MOTION_LAG_S before this one (for the motion cue), and
        remember this one."""
        history = self.history.setdefault(frame.camera_id, deque(maxlen=HISTORY_FRAMES))
        now = frame.source_time
        while history and history[0][0] > now:  # the source restarted (a looped file)
            history.popleft()
        before = next(
            (
                g
                for t, g in reversed(history)
                if MOTION_LAG_S <= now - t <= MOTION_MAX_LAG_S and g.shape == grey.shape
            ),
            None,
        )
        history.append((now, grey))
        return before

    def expire(self) -> None:
        """Forget tracks nobody has seen for a while (called when the stream is idle)."""
        cutoff = time.monotonic() - self.settings.liveness_track_timeout_seconds
        for key in [k for k, e in self.tracks.items() if e.touched < cutoff]:
            del self.tracks[key]

    def _evidence(self, frame: Frame, track_id: str) -> TrackEvidence:
        key = (frame.camera_id, track_id)
        evidence = self.tracks.get(key)
        if evidence is None:
            if len(self.tracks) >= MAX_TRACKS:
                oldest = min(self.tracks, key=lambda k: self.tracks[k].touched)
                del self.tracks[oldest]
            evidence = TrackEvidence(
                detector=BlinkDetector(
                    closed_ratio=self.settings.liveness_closed_ratio,
                    closed_ear_max=self.settings.liveness_closed_ear_max,
                    max_blink_seconds=self.settings.liveness_max_blink_seconds,
                ),
                first_seen=frame.source_time,
                last_seen=frame.source_time,
            )
            self.tracks[key] = evidence
        evidence.touched = time.monotonic()
        return evidence

    def _publish_if_changed(
        self, frame: Frame, track_id: str, evidence: TrackEvidence, *, emit: bool = True
    ) -> Judgement:
        judgement = decide(evidence, self.policy_for(frame.camera_id))
        state, reason, cues = judgement
        signature = (state, evidence.detector.blinks, tuple(c.flagged for c in cues))
        if signature == evidence.published:
            return judgement
        if not emit:  # replayed: this verdict went out when the frame was first handled
            evidence.published = signature
            return judgement
        verdict = LivenessVerdict(
            camera_id=frame.camera_id,
            track_id=track_id,
            state=state,
            reason=reason,
            blinks=evidence.detector.blinks,
            frames_seen=evidence.frames_seen,
            frames_with_eyes=evidence.frames_with_eyes,
            open_ear=evidence.detector.open_ear,
            passive_score=evidence.mean_passive,
            passive_frames=len(evidence.passive),
            cues=cues,
            captured_at=frame.captured_at,
        )
        publish(self.redis, self.keys.verdicts.of(frame.camera_id), verdict)  # its frame's shard
        evidence.published = signature
        VERDICTS.labels(state).inc()
        return judgement
