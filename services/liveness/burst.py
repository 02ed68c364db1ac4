"""Liveness of a short burst of frames (a login kiosk sends 2-3 s): the largest face in each
frame is treated as one track, and judged exactly like a track from a camera."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from services.liveness.blink import BlinkDetector
from services.liveness.eyes import measure_eyes
from services.liveness.verdict import LivenessPolicy, TrackEvidence, decide
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


def burst_liveness(
    frames: list[np.ndarray], *, fps: float, policy: LivenessPolicy, detector: BlinkDetector
) -> LivenessReport:
    evidence = TrackEvidence(detector=detector, first_seen=0.0, last_seen=0.0)
    with_face = 0
    for index, rgb in enumerate(frames):
        at = index / fps
        boxes = detect_faces(rgb, upsample=1)
        if not boxes:
            evidence.observe(at, None, "no face in the frame")
            continue
        with_face += 1
        evidence.observe(at, *measure_eyes(rgb.mean(axis=2).astype(np.uint8), boxes[0]))
    state, reason = decide(evidence, policy)
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
    )
