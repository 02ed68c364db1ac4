"""Liveness of a short burst of frames (a login kiosk sends 2-3 s): the largest face in each
frame is treated as one track, and judged exactly like a track from a camera."""

from __future__ import annotations

import numpy as np

from services.liveness.blink import BlinkDetector
from services.liveness.cues import context_motion, frame_edges
from services.liveness.evidence import EvidenceReader
from services.liveness.timing import MOTION_LAG_S, PASSIVE_EVERY
from services.liveness.verdict import LivenessPolicy, TrackEvidence, decide
from watchpost.contracts import LivenessReport
from watchpost.images import cut_square, to_grey
from watchpost.vision.faces import detect_faces


def burst_liveness(
    frames: list[np.ndarray], *, fps: float, reader: EvidenceReader, detector: BlinkDetector
) -> LivenessReport:
    evidence, with_face = burst_evidence(frames, fps=fps, reader=reader, detector=detector)
    return judge_burst(evidence, with_face, len(frames), reader.policy)


def burst_evidence(
    frames: list[np.ndarray], *, fps: float, reader: EvidenceReader, detector: BlinkDetector
) -> tuple[TrackEvidence, int]:
    """The burst's evidence (one track: the largest face of each frame) and its frames with a
    face; `judge_burst` turns it into the report (benchmarks judge one evidence by several
    policies)."""
    evidence = TrackEvidence(detector=detector, first_seen=0.0, last_seen=0.0)
    evidence.parallax.keep = max(evidence.parallax.keep, len(frames))  # judged once, on all
    with_face = 0
    lag = max(1, round(MOTION_LAG_S * fps))  # the motion cue's frame pairs, as on a camera
    greys: list[np.ndarray | None] = []
    crops = []
    for index, rgb in enumerate(frames):
        at = index / fps
        boxes = detect_faces(rgb, upsample=1)[:1]
        grey = to_grey(rgb)
        greys.append(grey)
        if not boxes:
            evidence.observe(at, None, "no face in the frame")
            continue
        with_face += 1
        (box,) = boxes
        if index % PASSIVE_EVERY == 0:
            crops.append(cut_square(rgb, box))
        before = greys[index - lag] if index >= lag else None
        if before is not None and before.shape == grey.shape:
            evidence.cues.observe_motion(context_motion(before, grey, box), at)
        evidence.cues.observe_edges(frame_edges(grey, box))
        (reading,) = reader.read_eyes(grey, boxes)
        evidence.observe(at, reading.ear, reading.problem, reading.p_closed)
        evidence.parallax.observe(at, reading.landmarks)
        if index >= lag:
            greys[index - lag] = None  # keep memory to the lag's window
    for score in reader.passive_scores(crops):
        evidence.observe_passive(score)
    return evidence, with_face


def judge_burst(
    evidence: TrackEvidence, with_face: int, frames: int, policy: LivenessPolicy
) -> LivenessReport:
    state, reason, cues = decide(evidence, policy)
    detector = evidence.detector
    if with_face == 0:
        state, reason = "undecided", "no face in any frame"
    return LivenessReport(
        state=state,
        reason=reason,
        blinks=detector.blinks,
        frames_seen=frames,
        frames_with_face=with_face,
        frames_with_eyes=evidence.frames_with_eyes,
        open_ear=detector.open_ear,
        passive_score=evidence.mean_passive,
        passive_frames=len(evidence.passive),
        cues=cues,
    )
