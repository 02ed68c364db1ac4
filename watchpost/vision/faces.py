"""Face detection, 128-d embeddings and 68-point landmarks on RGB uint8 arrays."""

from __future__ import annotations

import dlib
import numpy as np

from watchpost.vision import models

Box = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


def _rect(box: Box) -> dlib.rectangle:
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


def embed_face(rgb: np.ndarray, box: Box, *, jitter: int = 0) -> np.ndarray:
    """dlib's 128-d embedding of the face in `box`, aligned on 5 landmarks."""
    shape = models.landmarks_5()(rgb, _rect(box))
    vector = models.face_encoder().compute_face_descriptor(rgb, shape, jitter)
    return np.asarray(vector, dtype=np.float32)


def landmarks_68(gray_or_rgb: np.ndarray, box: Box) -> np.ndarray:
    """(68, 2) landmark coordinates (iBUG 300-W order) for the face in `box`."""
    shape = models.landmarks_68()(gray_or_rgb, _rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
