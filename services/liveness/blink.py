"""Blinks from the eye-aspect ratio (EAR) of dlib's 68 landmarks; pure NumPy, no I/O.

EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) per eye (Soukupova & Cech, 2016): about 0.25-0.35 for an
open eye, near 0.1 when closed. A fixed threshold fails on narrow eyes, so each track is
calibrated on itself: its open-eye EAR is a high percentile of its recent EAR, and an eye counts
as closed below `closed_ratio` of that (and never above `closed_ear_max`). A blink is a closure
between open frames that lasts at most `max_blink_seconds` by the frames' own times, so it
reads the same at 5 fps and at 30 fps.
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


def eye_widths(landmarks: np.ndarray) -> tuple[float, float]:
    """Corner-to-corner widths (px) of the right and left eye."""
    right_eye, left_eye = landmarks[RIGHT_EYE], landmarks[LEFT_EYE]
    return (
        float(np.linalg.norm(right_eye[0] - right_eye[3])),
        float(np.linalg.norm(left_eye[0] - left_eye[3])),
    )


def eyes_measurable(
    landmarks: np.ndarray, box_width: int, *, min_eye_px: float = 10.0
) -> str | None:
    """None when the eyes of this face can be read, else the reason they cannot."""
    right_eye, left_eye = landmarks[RIGHT_EYE], landmarks[LEFT_EYE]
    right_w, left_w = eye_widths(landmarks)
    if max(right_w, left_w) < min_eye_px:
        return (
            f"face too small to read the eyes: eyes {max(right_w, left_w):.0f} px wide, "
            f"under {min_eye_px:g} px"
        )
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
    # Longest closure that is a blink, by frame times (from the first to the last closed frame):
    # longer is eyes shut or looking down. Blinks last 0.1-0.4 s.
    max_blink_seconds: float = 0.5
    calibration_frames: int = 5
    history: int = 150
    blinks: int = 0
    _ears: deque = field(init=False, repr=False)
    _closed_since: float | None = field(default=None, init=False)
    _closed_last: float | None = field(default=None, init=False)
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
        return self._closed_since is not None

    def update(self, at: float, ear: float, p_closed: float | None = None) -> bool:
        """Feed one frame taken at `at` (seconds, the source's clock); True when this frame
        completes a blink (the eyes re-open after at most `max_blink_seconds` closed)."""
        self._ears.append(ear)
        closedness = self.closedness(ear, p_closed)
        if closedness is None:
            return False
        close_level, reopen_level = (1.0, 2 / 3) if p_closed is None else (0.75, 0.45)
        if self._closed_since is None or self._closed_last is None:
            if closedness >= close_level:
                self._closed_since = self._closed_last = at
            else:
                self._seen_open = True
            return False
        if closedness >= reopen_level:
            self._closed_last = at
            return False
        closed_for = self._closed_last - self._closed_since
        self._closed_since = self._closed_last = None
        blinked = self._seen_open and 0.0 <= closed_for <= self.max_blink_seconds
        self._seen_open = True
        if blinked:
            self.blinks += 1
        return blinked


def count_blinks(
    ears: Iterable[float],
    p_closed: Iterable[float | None] | None = None,
    *,
    fps: float = 30.0,
    **thresholds,
) -> int:
    """Blinks in a series of per-frame EARs (and CNN P(closed)) taken `fps` frames a second."""
    detector = BlinkDetector(**thresholds)
    for index, (ear, p) in enumerate(zip(ears, p_closed or itertools.repeat(None), strict=False)):
        detector.update(index / fps, ear, p)
    return detector.blinks
