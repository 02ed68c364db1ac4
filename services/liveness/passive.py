"""The passive attack check: real vs spoof from face crops (eye state is in `eyes.py`).

A small Keras CNN trained by `services/liveness/training/`; its weights are committed
under `services/liveness/models/` with a model card. The crops are cut here and only here,
so training and inference see the same geometry.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from services.liveness.eyes import KerasBinaryClassifier

FACE_CROP = 64


def spoof_crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(64, 64, 3) uint8: the face box grown by 20% on each side (some of the background and
    the photo's edge are evidence), clipped to the frame."""
    left, top, right, bottom = box
    dx, dy = int((right - left) * 0.2), int((bottom - top) * 0.2)
    h, w = rgb.shape[:2]
    region = rgb[max(0, top - dy) : min(h, bottom + dy), max(0, left - dx) : min(w, right + dx)]
    return np.asarray(Image.fromarray(region).resize((FACE_CROP, FACE_CROP), Image.BILINEAR))


class SpoofClassifier(KerasBinaryClassifier):
    """P(spoof) per 64x64 face crop; `threshold` was chosen on held-out subjects."""

    def __init__(self) -> None:
        super().__init__("spoof")
        self.threshold = float(self.card["threshold"])
