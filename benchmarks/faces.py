"""Shared by the recognition benchmarks: embed the faces of image files, once each."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from watchpost.vision.faces import detect_faces, embed_face


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@cache
def embed_largest(path: Path, *, whole_image_fallback: bool = True) -> np.ndarray | None:
    """The embedding of the largest face; for tight crops (LFW, face-api.js) where the detector
    finds nothing, of the central 80% of the image instead (None if that is not allowed)."""
    rgb = load_rgb(path)
    boxes = detect_faces(rgb, upsample=1)
    if boxes:
        return embed_face(rgb, boxes[0])
    if not whole_image_fallback:
        return None
    h, w = rgb.shape[:2]
    return embed_face(rgb, (w // 10, h // 10, w - w // 10, h - h // 10))


def embed_all(path: Path) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    rgb = load_rgb(path)
    return [(box, embed_face(rgb, box)) for box in detect_faces(rgb, upsample=1)]
