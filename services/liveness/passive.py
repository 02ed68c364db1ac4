"""The learned parts of liveness: eye state from eye patches, real vs spoof from face crops.

Both are small Keras CNNs trained by `services/liveness/training/`; their weights are committed
under `services/liveness/models/` with a model card. The crops are cut here and only here, so
training and inference see the same geometry.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.blink import LEFT_EYE, RIGHT_EYE

MODELS = Path(__file__).resolve().parent / "models"
EYE_PATCH = 24
FACE_CROP = 64


def eye_patches(grey: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(2, 24, 24) uint8 patches around both eyes: a square of twice the eye's width, centred on
    it (the framing of the CEW patches the CNN learnt from)."""
    patches = []
    h, w = grey.shape[:2]
    for eye in (landmarks[RIGHT_EYE], landmarks[LEFT_EYE]):
        centre = eye.mean(axis=0)
        half = max(4.0, float(np.linalg.norm(eye[0] - eye[3])))
        left, top = round(float(centre[0]) - half), round(float(centre[1]) - half)
        right, bottom = round(float(centre[0]) + half), round(float(centre[1]) + half)
        region = grey[max(0, top) : min(h, bottom), max(0, left) : min(w, right)]
        if region.size == 0:
            region = np.zeros((EYE_PATCH, EYE_PATCH), np.uint8)
        patch = Image.fromarray(region).resize((EYE_PATCH, EYE_PATCH), Image.BILINEAR)
        patches.append(np.asarray(patch))
    return np.stack(patches)


def standardise(patches: np.ndarray) -> np.ndarray:
    """Each eye patch to zero mean and unit variance: lighting and contrast say nothing about
    whether an eye is shut (the eye-state CNN is trained and run on this)."""
    x = patches.astype(np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return (x - mean) / np.maximum(std, 4.0)


def spoof_crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(64, 64, 3) uint8: the face box grown by 20% on each side (some of the background and
    the photo's edge are evidence), clipped to the frame."""
    left, top, right, bottom = box
    dx, dy = int((right - left) * 0.2), int((bottom - top) * 0.2)
    h, w = rgb.shape[:2]
    region = rgb[max(0, top - dy) : min(h, bottom + dy), max(0, left - dx) : min(w, right + dx)]
    return np.asarray(Image.fromarray(region).resize((FACE_CROP, FACE_CROP), Image.BILINEAR))


class KerasBinaryClassifier:
    """A committed Keras model with one sigmoid output, called in batches."""

    def __init__(self, name: str) -> None:
        self.path = MODELS / f"{name}.keras"
        self.card = json.loads((MODELS / f"{name}.metrics.json").read_text())

    @cached_property
    def _model(self):
        from watchpost.vision.models import keras_model

        return keras_model(self.path)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros(0, np.float32)
        x = batch.astype(np.float32)
        if x.ndim == 3:
            x = x[..., None]
        return self._model(x).ravel()


class EyeStateClassifier(KerasBinaryClassifier):
    """P(closed) per 24x24 grey eye patch: the mean over the patch and its mirror image."""

    def __init__(self) -> None:
        super().__init__("eye_state")

    def scores(self, batch: np.ndarray) -> np.ndarray:
        both = super().scores(standardise(np.concatenate([batch, batch[:, :, ::-1]])))
        return (both[: len(batch)] + both[len(batch) :]) / 2


class SpoofClassifier(KerasBinaryClassifier):
    """P(spoof) per 64x64 face crop; `threshold` was chosen on held-out subjects."""

    def __init__(self) -> None:
        super().__init__("spoof")
        self.threshold = float(self.card["threshold"])
