"""Attack cues that need no training data (pure functions of pixels, and their per-track tally).

Motion: a face replayed on a phone or held up on paper moves with its own surroundings (the
screen's background, the bezel, the sheet), because they are one rigid thing in the attacker's
hand; a live head moves against a scene that stays still. So between two frames about 0.15 s
apart we track corners on the face and on a ring around it (beside and above the face, at face
height: not below the chin, where a live person's own body moves with the head) and ask how much
of the face's displacement the ring shares. A fixed camera is assumed (a door, a kiosk); a camera
that pans moves everything and makes a live face look like a replay, which is why the motion cue
needs several agreeing frame pairs and is reported with its samples.

Edges: a phone, a tablet or a sheet of paper held up shows long straight edges close around the
face, parallel to the face's sides or top. `frame_edges` measures how much of such a box is
traced by strong straight gradients. It corroborates; it never decides alone (door frames and
shelves are straight too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from watchpost.geometry import BoxTuple as Box
from watchpost.messages import AttackCue

MIN_FACE_MOTION_PX = 1.5  # in pixels of a face 100 px wide: smaller moves say nothing
MIN_POINTS = 6
RING_INNER, RING_OUTER = 0.35, 0.9  # face widths beside the face
MOTION_FACE_PX = 130  # the motion cue works on the face scaled to this width


@dataclass(frozen=True)
class MotionSample:
    """One frame pair: how far the face moved (in face widths) and how much of that move its
    surroundings shared (0: a still scene, 1: face and surroundings moved as one)."""

    face: float
    follows: float
    at: float = 0.0  # source time (s) of the pair's later frame, set by TrackCues.observe_motion


def _points(grey: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray | None:
    points = cv2.goodFeaturesToTrack(
        grey, maxCorners=count, qualityLevel=0.01, minDistance=3, mask=mask
    )
    return None if points is None or len(points) < MIN_POINTS else points


def _flow(
    before: np.ndarray, after: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        before,
        after,
        points,
        None,  # type: ignore[call-overload]  # OpenCV allocates the output; its stubs say no
        winSize=(15, 15),
        maxLevel=2,
    )
    ok = status.ravel() == 1
    if ok.sum() < MIN_POINTS:
        return None
    return points.reshape(-1, 2)[ok], moved.reshape(-1, 2)[ok]


def ring_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    """Beside and above the face at face height, between 0.35 and 0.9 face widths out: where a
    phone's or a print's own background is, and where a live person has only the still scene
    (hair and ears excluded by the gap, shoulders and body by stopping at the chin)."""
    h, w = shape
    left, top, right, bottom = box
    fw, fh = right - left, bottom - top
    mask = np.zeros((h, w), np.uint8)
    outer = (
        max(0, int(left - RING_OUTER * fw)),
        max(0, int(top - 0.7 * fh)),
        min(w, int(right + RING_OUTER * fw)),
        min(h, bottom),
    )
    mask[outer[1] : outer[3], outer[0] : outer[2]] = 255
    inner = (
        max(0, int(left - RING_INNER * fw)),
        max(0, int(top - 0.3 * fh)),
        min(w, int(right + RING_INNER * fw)),
        min(h, bottom),
    )
    mask[inner[1] : inner[3], inner[0] : inner[2]] = 0
    return mask


def context_motion(before: np.ndarray, after: np.ndarray, box: Box) -> MotionSample | None:
    """How the face in `box` moved from `before` to `after` (grey frames of one camera) and how
    much its surroundings moved with it; None when the face hardly moved (a still face says
    nothing) or there is too little texture to track."""
    # Work on the neighbourhood only (face and ring): corner search over a whole frame costs 5x.
    fw0, fh0 = box[2] - box[0], box[3] - box[1]
    x0, y0 = max(0, int(box[0] - RING_OUTER * fw0) - 16), max(0, int(box[1] - 0.7 * fh0) - 16)
    x1 = min(after.shape[1], int(box[2] + RING_OUTER * fw0) + 16)
    y1 = min(after.shape[0], int(box[3]) + 16)
    before, after = before[y0:y1, x0:x1], after[y0:y1, x0:x1]
    # ...scaled so the face is MOTION_FACE_PX across whatever the camera: the same corners and
    # window sizes see the same face detail at 640 px and at 1080p.
    scale = MOTION_FACE_PX / max(1, fw0)
    if abs(scale - 1.0) > 0.05:
        size = (max(1, round(after.shape[1] * scale)), max(1, round(after.shape[0] * scale)))
        before = cv2.resize(before, size, interpolation=cv2.INTER_AREA)
        after = cv2.resize(after, size, interpolation=cv2.INTER_AREA)
    h, w = after.shape[:2]
    left, top, right, bottom = (
        round((box[0] - x0) * scale),
        round((box[1] - y0) * scale),
        round((box[2] - x0) * scale),
        round((box[3] - y0) * scale),
    )
    fw = max(1, right - left)
    face_mask = np.zeros((h, w), np.uint8)
    inset = fw // 8
    y0, y1 = max(0, top + inset), max(0, bottom - inset)
    face_mask[y0:y1, max(0, left + inset) : max(0, right - inset)] = 255
    face_points = _points(before, face_mask, 60)
    ring_points = _points(before, ring_mask((h, w), (left, top, right, bottom)), 120)
    if face_points is None or ring_points is None:
        return None
    face = _flow(before, after, face_points)
    ring = _flow(before, after, ring_points)
    if face is None or ring is None:
        return None
    face_shift = np.median(face[1] - face[0], axis=0)
    magnitude = float(np.linalg.norm(face_shift))
    if magnitude < MIN_FACE_MOTION_PX * fw / 100:
        return None
    # The ring's own motion, robustly: the median displacement of its corners (a passer-by in
    # the ring is outvoted by the still wall; a phone's background moves as one).
    ring_shift = np.median(ring[1] - ring[0], axis=0)
    residual = float(np.linalg.norm(ring_shift - face_shift)) / magnitude
    follows = float(np.clip(1.0 - residual, 0.0, 1.0))
    return MotionSample(face=magnitude / fw, follows=follows)


def frame_edges(grey: np.ndarray, box: Box) -> float:
    """Share (0-1) of a rectangle around the face traced by strong straight edges: the best of
    the face's left, right and top sides searched from 0.3 to 1.2 face widths out. A phone or
    sheet held up traces most of it; a room rarely more than one side."""
    h, w = grey.shape[:2]
    left, top, right, bottom = (int(v) for v in box)
    fw, fh = right - left, bottom - top
    if fw < 24:
        return 0.0
    x0, x1 = max(0, int(left - 1.3 * fw)), min(w, int(right + 1.3 * fw))
    y0, y1 = max(0, int(top - 1.0 * fh)), min(h, int(bottom + 0.5 * fh))
    region = grey[y0:y1, x0:x1].astype(np.float32)
    if region.shape[0] < 8 or region.shape[1] < 8:
        return 0.0
    gx = np.abs(cv2.Sobel(region, cv2.CV_32F, 1, 0, ksize=3))
    gy = np.abs(cv2.Sobel(region, cv2.CV_32F, 0, 1, ksize=3))
    strong = max(40.0, float(np.percentile(np.maximum(gx, gy), 90)))
    vertical = (gx > strong) & (gx > 2 * gy)
    horizontal = (gy > strong) & (gy > 2 * gx)
    fl, fr, ft, fb = left - x0, right - x0, top - y0, bottom - y0

    def best_column(lo: int, hi: int) -> float:
        lo, hi = max(0, lo), min(region.shape[1], hi)
        if hi <= lo:
            return 0.0
        span = vertical[max(0, ft) : fb, lo:hi]
        return float(span.mean(axis=0).max()) if span.size else 0.0

    def best_row(lo: int, hi: int) -> float:
        lo, hi = max(0, lo), min(region.shape[0], hi)
        if hi <= lo:
            return 0.0
        span = horizontal[lo:hi, max(0, fl) : fr]
        return float(span.mean(axis=1).max()) if span.size else 0.0

    sides = [
        best_column(int(fl - 1.2 * fw), int(fl - 0.3 * fw)),
        best_column(int(fr + 0.3 * fw), int(fr + 1.2 * fw)),
        best_row(int(ft - 0.9 * fh), int(ft - 0.2 * fh)),
    ]
    # Two sides traced well is a frame; one is a door post.
    return float(sorted(sides)[-2])


@dataclass
class TrackCues:
    """The cue readings of one track, and the cues they add up to."""

    motion: list[MotionSample] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)

    def observe_motion(self, sample: MotionSample | None, at: float) -> None:
        """One frame pair's reading, `at` the source time of its later frame."""
        if sample is not None:
            self.motion.append(replace(sample, at=at))
            del self.motion[:-60]

    def motion_span(self) -> float:
        """Seconds between the first and the last kept motion sample."""
        return self.motion[-1].at - self.motion[0].at if self.motion else 0.0

    def observe_edges(self, score: float) -> None:
        self.edges.append(score)
        del self.edges[:-60]

    def motion_cue(
        self, threshold: float, min_pairs: int, min_seconds: float = 0.0
    ) -> AttackCue | None:
        """Flags when at least `min_pairs` pairs over at least `min_seconds` show the face's
        surroundings sharing `threshold` of its motion on average. The span matters because
        pairs a frame apart overlap: five of them at 30 fps are 0.17 s, one moment seen five
        times (a face printed on a shirt, found for a few frames, moves with the shirt)."""
        if not self.motion:
            return None
        score = float(np.mean([s.follows for s in self.motion]))
        return AttackCue(
            name="motion",
            score=round(score, 3),
            threshold=threshold,
            samples=len(self.motion),
            flagged=len(self.motion) >= min_pairs
            and self.motion_span() >= min_seconds
            and score >= threshold,
            decides=True,
        )

    def edges_cue(self, threshold: float, min_frames: int) -> AttackCue | None:
        if not self.edges:
            return None
        score = float(np.median(self.edges))
        return AttackCue(
            name="edges",
            score=round(score, 3),
            threshold=threshold,
            samples=len(self.edges),
            flagged=len(self.edges) >= min_frames and score >= threshold,
            decides=False,
        )
