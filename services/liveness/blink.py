"""Blinks from the eye-aspect ratio (EAR) of dlib's 68 landmarks; pure NumPy, no I/O.

EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) per eye (Soukupova & Cech, 2016): about 0.25-0.35 for an
open eye, near 0.1 when closed. A fixed threshold fails on narrow eyes, so each track is
calibrated on itself: its open-eye EAR is a high percentile of its recent EAR, and an eye counts
as closed below `closed_ratio` of that (and never above `closed_ear_max`). A blink is a short run
of closed frames between open ones.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

RIGHT_EYE = slice(36, 42)  # the subject's right eye, image left
LEFT_EYE = slice(42, 48)
NOSE_TIP = 30


def eye_aspect_ratio(eye: np.ndarray) -> float:
    p1, p2, p3, p4, p5, p6 = eye
    width = np.linalg.norm(p1 - p4)
    if width == 0:
        return 0.0
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2.0 * width))


def face_ear(landmarks: np.ndarray) -> float:
    """Mean EAR of both eyes from (68, 2) landmarks."""
    return (eye_aspect_ratio(landmarks[RIGHT_EYE]) + eye_aspect_ratio(landmarks[LEFT_EYE])) / 2.0


def eyes_measurable(
    landmarks: np.ndarray, box_width: int, *, min_eye_px: float = 12.0
) -> str | None:
    """None when EAR can be trusted on this face, else the reason it cannot."""
    right_eye, left_eye = landmarks[RIGHT_EYE], landmarks[LEFT_EYE]
    right_w = np.linalg.norm(right_eye[0] - right_eye[3])
    left_w = np.linalg.norm(left_eye[0] - left_eye[3])
    if min(right_w, left_w) < min_eye_px:
        return "face too small to read the eyes"
    # A turned head foreshortens one eye; its EAR then says nothing about closing.
    if min(right_w, left_w) / max(right_w, left_w) < 0.6:
        return "face turned away from the camera"
    inner_x = sorted([right_eye[3][0], left_eye[0][0]])
    if not inner_x[0] - box_width * 0.1 <= landmarks[NOSE_TIP][0] <= inner_x[1] + box_width * 0.1:
        return "face turned away from the camera"
    return None


@dataclass
class BlinkDetector:
    """Counts blinks in a stream of per-frame eye observations, calibrated on the stream itself.

    Each frame gives the EAR and, when the eye-state CNN ran, its P(closed). Both become a
    "closedness" in [0, 1]: for the EAR, 0 at the track's open EAR and 1 at its closed threshold;
    fused, the mean of that and the CNN's probability. An eye closes when closedness reaches
    `close_level` and re-opens only below `reopen_level` (hysteresis), so a noisy dip and
    recovery is one event, not two. With the EAR alone the levels are 1.0 (at the threshold) and
    2/3 (a third of the way back to open); fused, 0.75 and 0.45, so either signal alone can
    neither make nor hide a blink unless it is very sure.
    """

    closed_ratio: float = 0.75
    closed_ear_max: float = 0.25
    min_closed_frames: int = 1
    max_closed_frames: int = 15  # 0.5 s at 30 fps: longer is eyes shut or looking down
    calibration_frames: int = 5
    history: int = 150
    blinks: int = 0
    _ears: deque = field(init=False, repr=False)
    _closed_run: int = field(default=0, init=False)
    _seen_open: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._ears = deque(maxlen=self.history)

    @property
    def open_ear(self) -> float | None:
        if len(self._ears) < self.calibration_frames:
            return None
        return float(np.percentile(self._ears, 80))

    def threshold(self) -> float | None:
        open_ear = self.open_ear
        if open_ear is None:
            return None
        return min(open_ear * self.closed_ratio, self.closed_ear_max)

    def closedness(self, ear: float, p_closed: float | None = None) -> float | None:
        closed, open_ear = self.threshold(), self.open_ear
        if closed is None or open_ear is None:
            return None
        span = max(open_ear - closed, 1e-6)
        from_ear = float(np.clip((open_ear - ear) / span, 0.0, 1.0))
        return from_ear if p_closed is None else (from_ear + p_closed) / 2.0

    @property
    def eyes_closed(self) -> bool:
        return self._closed_run > 0

    def update(self, ear: float, p_closed: float | None = None) -> bool:
        """Feed one frame; True when this frame completes a blink."""
        self._ears.append(ear)
        closedness = self.closedness(ear, p_closed)
        if closedness is None:
            return False
        close_level, reopen_level = (1.0, 2 / 3) if p_closed is None else (0.75, 0.45)
        if not self.eyes_closed:
            if closedness >= close_level:
                self._closed_run = 1
            else:
                self._seen_open = True
            return False
        if closedness >= reopen_level:
            self._closed_run += 1
            return False
        run, self._closed_run = self._closed_run, 0
        blinked = self._seen_open and self.min_closed_frames <= run <= self.max_closed_frames
        self._seen_open = True
        if blinked:
            self.blinks += 1
        return blinked


def count_blinks(
    ears: Iterable[float], p_closed: Iterable[float | None] | None = None, **thresholds
) -> int:
    detector = BlinkDetector(**thresholds)
    for ear, p in zip(ears, p_closed or itertools.repeat(None), strict=False):
        detector.update(ear, p)
    return detector.blinks
