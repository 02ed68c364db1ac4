"""Eye state from eye patches: where the patches are cut, how they are normalised, and the
eye-state CNN that reads them (trained on the CEW patches by `training/eye_state.py`).

The patches are cut here and only here, so training, benchmarks and the service see the same
geometry. Landmarks on small faces are found on an upscaled copy of the face (`face_landmarks`),
and eyes too narrow to say anything are refused with a reason (`blink.eyes_measurable`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.blink import LEFT_EYE, RIGHT_EYE

MODELS = Path(__file__).resolve().parent / "models"
EYE_PATCH = 24
# Side of the square eye patch in eye widths (corner to corner, landmarks 36-39 / 42-45), as in
# the CEW patches the CNN learnt from: measured by `benchmarks/eye_framing.py` (docs/liveness.md).
EYE_FRAMING = 1.70
# Faces narrower than this (px) are upscaled to it before the 68 landmarks are fitted.
LANDMARK_FACE_PX = 160


def eye_patches(
    grey: np.ndarray, landmarks: np.ndarray, *, framing: float = EYE_FRAMING
) -> np.ndarray:
    """(2, 24, 24) uint8 patches around both eyes: a square `framing` eye widths on a side,
    centred on the eye's six landmarks, resized with antialiasing; where the square leaves the
    frame the edge pixels repeat (a black border would look like an eyelid)."""
    patches = []
    h, w = grey.shape[:2]
    for eye in (landmarks[RIGHT_EYE], landmarks[LEFT_EYE]):
        centre = eye.mean(axis=0)
        half = max(2.0, framing * float(np.linalg.norm(eye[0] - eye[3])) / 2)
        left, top = round(float(centre[0]) - half), round(float(centre[1]) - half)
        right, bottom = round(float(centre[0]) + half), round(float(centre[1]) + half)
        rows = np.clip(np.arange(top, bottom), 0, h - 1)
        cols = np.clip(np.arange(left, right), 0, w - 1)
        region = np.ascontiguousarray(grey[np.ix_(rows, cols)])
        patch = Image.fromarray(region).resize((EYE_PATCH, EYE_PATCH), Image.Resampling.BILINEAR)
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


def face_landmarks(
    grey: np.ndarray, box: tuple[int, int, int, int], *, upscale_below: int = LANDMARK_FACE_PX
) -> np.ndarray:
    """(68, 2) landmarks in `grey`'s pixels. A face narrower than `upscale_below` is fitted on
    an upscaled copy of its surroundings (bicubic): dlib's regression trees sample single pixels,
    and on a 60-px face neighbouring samples fall on the same pixel."""
    from watchpost.vision.faces import landmarks_68

    left, top, right, bottom = box
    width = right - left
    if width <= 0 or bottom <= top:
        raise ValueError(f"empty face box {box}: landmarks need a box with width and height")
    if width >= upscale_below:
        return landmarks_68(grey, box)
    factor = upscale_below / width
    h, w = grey.shape[:2]
    margin = width // 2
    x0, y0 = max(0, left - margin), max(0, top - margin)
    x1, y1 = min(w, right + margin), min(h, bottom + margin)
    size = (round((x1 - x0) * factor), round((y1 - y0) * factor))
    region = np.asarray(Image.fromarray(grey[y0:y1, x0:x1]).resize(size, Image.Resampling.BICUBIC))
    scaled_box = (
        round((left - x0) * factor),
        round((top - y0) * factor),
        round((right - x0) * factor),
        round((bottom - y0) * factor),
    )
    points = landmarks_68(region, scaled_box)
    return points / factor + np.array([x0, y0], np.float32)


class EyeStateClassifier:
    """P(closed) per 24x24 grey eye patch: the mean over the patch and its mirror image. The CNN
    is trained in Keras (training/eye_state.py) and runs from its LiteRT export beside it
    (`eye_state.tflite`, checked against the Keras model on the held-out split when exported:
    its model card's `litert` entry), so the service never loads TensorFlow."""

    def __init__(self) -> None:
        self.path = MODELS / "eye_state.tflite"
        self.card = json.loads((MODELS / "eye_state.metrics.json").read_text())

    @cached_property
    def _model(self) -> Callable[[np.ndarray], np.ndarray]:
        from watchpost.vision.models import litert_model

        return litert_model(self.path)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros(0, np.float32)
        both = self._model(standardise(np.concatenate([batch, batch[:, :, ::-1]]))[..., None])
        both = both.ravel()
        return (both[: len(batch)] + both[len(batch) :]) / 2
