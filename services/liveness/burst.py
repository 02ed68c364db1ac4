"""Liveness of a short burst of frames (a login kiosk sends 2-3 s): the largest face in each
frame is treated as one track, and judged exactly like a track from a camera."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from services.liveness.blink import BlinkDetector
from services.liveness.evidence import EvidenceReader
from services.liveness.verdict import TrackEvidence, decide
from watchpost.images import to_grey
from watchpost.messages import LivenessState
from watchpost.vision.faces import detect_faces


class LivenessReport(BaseModel):
    state: LivenessState
    reason: str
    blinks: int
    frames_seen: int
    frames_with_face: int
    frames_with_eyes: int
    open_ear: float | None
    passive_score: float | None
    passive_frames: int


def burst_liveness(
    frames: list[np.ndarray], *, fps: float, reader: EvidenceReader, detector: BlinkDetector
) -> LivenessReport:
    evidence = TrackEvidence(detector=detector, first_seen=0.0, last_seen=0.0)
    with_face = 0
    for index, rgb in enumerate(frames):
        at = index / fps
        boxes = detect_faces(rgb, upsample=1)[:1]
        if not boxes:
            evidence.observe(at, None, "no face in the frame")
            continue
        with_face += 1
        for score in reader.spoof_scores(rgb, boxes):
            if score is not None:
                evidence.observe_passive(score)
        (reading,) = reader.read_eyes(to_grey(rgb), boxes)
        evidence.observe(at, reading.ear, reading.problem, reading.p_closed)
    state, reason = decide(evidence, reader.policy)
    if with_face == 0:
        state, reason = "undecided", "no face in any frame"
    return LivenessReport(
        state=state,
        reason=reason,
        blinks=detector.blinks,
        frames_seen=len(frames),
        frames_with_face=with_face,
        frames_with_eyes=evidence.frames_with_eyes,
        open_ear=detector.open_ear,
        passive_score=evidence.mean_passive,
        passive_frames=len(evidence.passive),
    )
