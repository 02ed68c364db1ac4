"""Read every tracked face of every frame (landmarks, EAR, eye-state CNN; a passive spoof score
every few frames), keep per-track evidence, and publish a liveness verdict whenever a track's
verdict or blink count changes.

State is per (camera, track) in this process, so one camera's frames must reach one replica in
order; see docs/architecture.md (scale-out).
"""

from __future__ import annotations

import logging
import time

import redis
from prometheus_client import Counter, Histogram

from services.liveness.blink import BlinkDetector
from services.liveness.evidence import EvidenceReader
from services.liveness.verdict import TrackEvidence, decide
from watchpost.images import decode_jpeg, to_grey
from watchpost.keys import VERDICTS_MAXLEN, Keys
from watchpost.messages import Frame, LivenessVerdict
from watchpost.settings import LivenessSettings
from watchpost.streams import Delivery, publish

log = logging.getLogger(__name__)

STALE_FRAMES = Counter("watchpost_liveness_stale_frames_total", "Frames skipped as too old")
VERDICTS = Counter("watchpost_liveness_verdicts_total", "Verdicts published", ["state"])
FRAME_SECONDS = Histogram("watchpost_liveness_frame_seconds", "Evidence reading per frame")
MAX_TRACKS = 2_000


class LivenessTracker:
    def __init__(self, settings: LivenessSettings, *, redis_client: redis.Redis) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = Keys(settings.stream_prefix)
        self.reader = EvidenceReader(settings)
        self.policy = self.reader.policy
        self.tracks: dict[tuple[str, str], TrackEvidence] = {}

    def handle(self, delivery: Delivery) -> None:
        frame = delivery.message
        assert isinstance(frame, Frame)
        if frame.is_stale(self.settings.frame_max_age_seconds):
            STALE_FRAMES.inc()
            return
        with FRAME_SECONDS.time():
            rgb = decode_jpeg(delivery.image)
            grey = to_grey(rgb)
            boxes = [face.box.as_tuple() for face in frame.faces]
            tracks = [self._evidence(frame, face.track_id) for face in frame.faces]
            due = [
                i
                for i, t in enumerate(tracks)
                if t.frames_seen % self.settings.liveness_passive_every == 0
            ]
            scores = self.reader.spoof_scores(rgb, [boxes[i] for i in due])
            for index, score in zip(due, scores, strict=True):
                if score is not None:
                    tracks[index].observe_passive(score)
            for evidence, reading in zip(tracks, self.reader.read_eyes(grey, boxes), strict=True):
                evidence.observe(frame.source_time, reading.ear, reading.problem, reading.p_closed)
        for face, evidence in zip(frame.faces, tracks, strict=True):
            self._publish_if_changed(frame, face.track_id, evidence)

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

    def _publish_if_changed(self, frame: Frame, track_id: str, evidence: TrackEvidence) -> None:
        state, reason = decide(evidence, self.policy)
        signature = (state, evidence.detector.blinks)
        if signature == evidence.published:
            return
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
            captured_at=frame.captured_at,
        )
        publish(self.redis, self.keys.verdicts, verdict, maxlen=VERDICTS_MAXLEN)
        evidence.published = signature
        VERDICTS.labels(state).inc()
