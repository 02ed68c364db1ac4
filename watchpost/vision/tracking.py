"""Follow faces between detections so each carries a stable `track_id` from capture onwards.

The detector runs every few frames; in between, one dlib correlation tracker per face moves its
box (about 4 ms per face instead of 35-150 ms for a detection). On a detection frame, detections
are matched by overlap to the tracks' boxes of the frame before (one frame apart, a face has
hardly moved; no correlation step is spent on a frame the detector reads anyway); a match
re-seeds the tracker, a new face starts a track, and a track that no detection confirms for a
while ends. A tracker is seeded only on the next frame that needs it (seeding costs about as much
as a step), so a detector run on every frame costs no tracking at all.

With `follow` (a detector's own step, `blazeface.follow_face`), no correlation tracker runs: each
track's box is looked for again around where it was. A face it misses is left out of that frame
but kept at its last box, so the next detection frame takes it back under the same id (or the
usual `max_unconfirmed` rule ends it).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import dlib
import numpy as np

from watchpost.geometry import BoxTuple as Box
from watchpost.vision.faces import dlib_rect


def iou(a: Box, b: Box) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_detections(
    tracks: dict[str, Box], detections: list[Box], *, min_iou: float
) -> tuple[dict[str, int], list[int], list[str]]:
    """Greedy one-to-one matching by overlap, best pairs first.

    Returns (track id -> detection index, unmatched detection indices, unmatched track ids).
    """
    pairs = sorted(
        (
            (iou(box, det), track_id, index)
            for track_id, box in tracks.items()
            for index, det in enumerate(detections)
        ),
        reverse=True,
    )
    matched: dict[str, int] = {}
    used: set[int] = set()
    for overlap, track_id, index in pairs:
        if overlap < min_iou:
            break
        if track_id in matched or index in used:
            continue
        matched[track_id] = index
        used.add(index)
    new = [i for i in range(len(detections)) if i not in used]
    lost = [t for t in tracks if t not in matched]
    return matched, new, lost


Follow = Callable[[np.ndarray, Box], Box | None]  # (frame, last box) -> box now, or None


@dataclass
class _Track:
    tracker: dlib.correlation_tracker | None
    box: Box
    unconfirmed_detections: int = 0
    seed: np.ndarray | None = None  # the frame to start the tracker on, at `box`, when needed


@dataclass(frozen=True)
class TrackedBox:
    track_id: str
    box: Box
    detected: bool


class FaceTracker:
    def __init__(
        self,
        *,
        min_iou: float = 0.3,
        max_unconfirmed: int = 2,
        min_quality: float = 7.0,
        min_size: int = 20,
        follow: Follow | None = None,
    ) -> None:
        self.follow = follow
        self.min_iou = min_iou
        self.max_unconfirmed = max_unconfirmed
        self.min_quality = min_quality
        self.min_size = min_size
        # A fresh token per tracker keeps track ids unique across capture restarts.
        self._token = secrets.token_hex(3)
        self._counter = itertools.count(1)
        self._tracks: dict[str, _Track] = {}

    def update(self, rgb: np.ndarray, detections: list[Box] | None) -> list[TrackedBox]:
        """Advance every track on this frame; with `detections`, also reconcile against them."""
        if detections is None:
            return self._follow(rgb)
        current = {t: tr.box for t, tr in self._tracks.items()}
        matched, new, lost = match_detections(current, detections, min_iou=self.min_iou)
        result = []
        for track_id, index in matched.items():
            track = self._tracks[track_id]
            track.box = detections[index]
            track.unconfirmed_detections = 0
            track.seed = rgb if track.tracker is not None else None
            result.append(TrackedBox(track_id, track.box, True))
        for track_id in lost:
            track = self._tracks[track_id]
            track.unconfirmed_detections += 1
            if track.unconfirmed_detections > self.max_unconfirmed:
                del self._tracks[track_id]
            else:
                result.append(TrackedBox(track_id, track.box, False))
        for index in new:
            track_id = f"{self._token}-{next(self._counter)}"
            if self.follow is None:
                track = _Track(dlib.correlation_tracker(), detections[index], seed=rgb)
            else:
                track = _Track(None, detections[index])
            self._tracks[track_id] = track
            result.append(TrackedBox(track_id, detections[index], True))
        return result

    def _follow(self, rgb: np.ndarray) -> list[TrackedBox]:
        """A frame without detection: every tracker steps on; a track it loses ends."""
        if self.follow is not None:
            return self._follow_by_detector(rgb, self.follow)
        h, w = rgb.shape[:2]
        for track_id, track in list(self._tracks.items()):
            assert track.tracker is not None
            if track.seed is not None:
                track.tracker.start_track(track.seed, dlib_rect(track.box))
                track.seed = None
            quality = track.tracker.update(rgb)
            box = _clip(track.tracker.get_position(), w, h)
            if (
                box is None
                or quality < self.min_quality
                or min(box[2] - box[0], box[3] - box[1]) < self.min_size
            ):
                del self._tracks[track_id]
                continue
            track.box = box
        return [TrackedBox(t, tr.box, False) for t, tr in self._tracks.items()]

    def _follow_by_detector(self, rgb: np.ndarray, follow: Follow) -> list[TrackedBox]:
        result = []
        for track_id, track in self._tracks.items():
            box = follow(rgb, track.box)
            if box is not None and min(box[2] - box[0], box[3] - box[1]) >= self.min_size:
                track.box = box
                result.append(TrackedBox(track_id, box, False))
        return result

    def reset(self) -> None:
        self._tracks.clear()


def _clip(r: dlib.drectangle, w: int, h: int) -> Box | None:
    left, top = max(0, round(r.left())), max(0, round(r.top()))
    right, bottom = min(w, round(r.right()) + 1), min(h, round(r.bottom()) + 1)
    if right <= left or bottom <= top:
        return None
    return (left, top, right, bottom)
