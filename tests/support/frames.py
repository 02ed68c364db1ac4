"""Build frames from still photos, as capture would publish them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from watchpost.images import encode_jpeg
from watchpost.messages import Box, Frame, TrackedFace
from watchpost.vision.faces import detect_faces


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def frame_of(
    rgb: np.ndarray,
    *,
    camera_id: str = "cam",
    track_prefix: str = "t",
    seq: int = 0,
    source_time: float = 0.0,
    boxes=None,
) -> tuple[Frame, bytes]:
    boxes = boxes if boxes is not None else detect_faces(rgb, upsample=1)
    faces = [
        TrackedFace(
            track_id=f"{track_prefix}-{i}",
            box=Box(left=b[0], top=b[1], right=b[2], bottom=b[3]),
            detected=True,
        )
        for i, b in enumerate(boxes)
    ]
    h, w = rgb.shape[:2]
    frame = Frame(
        camera_id=camera_id,
        seq=seq,
        captured_at=time.time(),
        source_time=source_time,
        width=w,
        height=h,
        faces=faces,
    )
    return frame, encode_jpeg(rgb)
