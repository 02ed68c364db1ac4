"""Shared by the recognition benchmarks: embed the faces of image files, once each.

A face the detectors miss is reported as missed (never silently replaced by a central box):
HOG first, then dlib's MMOD CNN detector on HOG's misses, as recognition does on uploads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from watchpost.geometry import BoxTuple
from watchpost.images import load_rgb as load_rgb  # re-exported for the callers
from watchpost.vision.faces import detect_faces, detect_faces_cnn, embed_face


@dataclass(frozen=True)
class Embedded:
    embedding: np.ndarray | None  # None: no detector found a face
    detector: str  # "hog", "cnn" or "missed"


def nearest_centre(boxes: list[BoxTuple], width: int, height: int) -> BoxTuple:
    """The box whose centre is nearest the image's centre."""
    return min(boxes, key=lambda b: ((b[0] + b[2]) - width) ** 2 + ((b[1] + b[3]) - height) ** 2)


@cache
def embed_photo(
    path: Path, *, jitter: int = 0, cnn_fallback: bool = True, face: str = "largest"
) -> Embedded:
    """The embedding of one face, and which detector found it. `face` says which one when
    several are found: "largest" (as enrolment's `largest=true` does), or "centre", nearest the
    image's centre: a benchmark's choice for photos framed on one person (LFW), not the
    product's."""
    rgb = load_rgb(path)
    boxes = detect_faces(rgb, upsample=1)
    detector = "hog"
    if not boxes and cnn_fallback:
        boxes, detector = detect_faces_cnn(rgb, upsample=1), "cnn"
    if not boxes:
        return Embedded(None, "missed")
    box = nearest_centre(boxes, rgb.shape[1], rgb.shape[0]) if face == "centre" else boxes[0]
    return Embedded(embed_face(rgb, box, jitter=jitter), detector)


def embed_largest(path: Path, *, jitter: int = 0) -> np.ndarray:
    """The largest face's embedding; a photo with no face found is an error, with its path."""
    found = embed_photo(path, jitter=jitter)
    if found.embedding is None:
        raise SystemExit(f"no face found in {path}")
    return found.embedding


def embed_all(path: Path) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    rgb = load_rgb(path)
    return [(box, embed_face(rgb, box)) for box in detect_faces(rgb, upsample=1)]
