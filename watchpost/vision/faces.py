"""Face detection, 128-d embeddings and 68-point landmarks on RGB uint8 arrays."""

from __future__ import annotations

import dlib
import numpy as np

from watchpost.geometry import BoxTuple as Box
from watchpost.vision import models


def dlib_rect(box: Box) -> dlib.rectangle:
    """dlib's rectangle for a box (dlib's right and bottom are inclusive, ours exclusive)."""
    left, top, right, bottom = box
    return dlib.rectangle(int(left), int(top), int(right) - 1, int(bottom) - 1)


def detect_faces(rgb: np.ndarray, *, upsample: int = 1, scale: float = 1.0) -> list[Box]:
    """HOG face boxes in `rgb`'s pixels, largest first. `scale` < 1 detects on a smaller copy."""
    image = rgb
    if scale != 1.0:
        import cv2  # only capture detects at a reduced scale, and it has OpenCV

        image = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    boxes = []
    for r in models.face_detector()(image, upsample):
        left, top = max(0, round(r.left() / scale)), max(0, round(r.top() / scale))
        right, bottom = (
            min(w, round((r.right() + 1) / scale)),
            min(h, round((r.bottom() + 1) / scale)),
        )
        if right > left and bottom > top:
            boxes.append((left, top, right, bottom))
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return boxes


def detect_faces_cnn(rgb: np.ndarray, *, upsample: int = 1) -> list[Box]:
    """MMOD CNN face boxes, largest first: the fallback where HOG finds nothing."""
    h, w = rgb.shape[:2]
    boxes = []
    for found in models.cnn_face_detector()(rgb, upsample):
        r = found.rect
        left, top = max(0, r.left()), max(0, r.top())
        right, bottom = min(w, r.right() + 1), min(h, r.bottom() + 1)
        if right > left and bottom > top:
            boxes.append((left, top, right, bottom))
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return boxes


def embed_face(rgb: np.ndarray, box: Box, *, jitter: int = 0) -> np.ndarray:
    """dlib's 128-d embedding of the face in `box`, aligned on 5 landmarks."""
    return embed_face_with_pose(rgb, box, jitter=jitter)[0]


def embed_face_with_pose(rgb: np.ndarray, box: Box, *, jitter: int = 0) -> tuple[np.ndarray, float]:
    """The embedding and the face's yaw (see `yaw_of`), from the same 5 landmarks."""
    shape = models.landmarks_5()(rgb, dlib_rect(box))
    vector = models.face_encoder().compute_face_descriptor(rgb, shape, jitter)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return np.asarray(vector, dtype=np.float32), yaw_of(points)


def yaw_of(points: np.ndarray) -> float:
    """How far the head is turned, from dlib's 5 landmarks (two corners of each eye, then the
    base of the nose): the nose's offset from the midpoint between the eyes, along the eye line,
    in inter-ocular distances. 0 is frontal; the sign says which way; about 0.3 is a head turned
    by some 35-40 degrees, and the nose leaves the eyes' span near 0.5."""
    eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    axis = eye_b - eye_a
    span = float(np.linalg.norm(axis))
    if span < 1e-6:
        return 1.0
    offset = points[4] - (eye_a + eye_b) / 2
    return float(offset @ axis / span / span)


def landmarks_68(gray_or_rgb: np.ndarray, box: Box) -> np.ndarray:
    """(68, 2) landmark coordinates (iBUG 300-W order) for the face in `box`."""
    shape = models.landmarks_68()(gray_or_rgb, dlib_rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
