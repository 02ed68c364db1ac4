"""Read the eyes of one face: its EAR, or the reason it cannot be read (uses dlib)."""

from __future__ import annotations

import numpy as np

from services.liveness.blink import eyes_measurable, face_ear
from watchpost.vision.faces import landmarks_68


def measure_eyes(
    grey: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[float | None, str | None]:
    """(EAR, None) for a face whose eyes can be read, else (None, why not)."""
    landmarks = landmarks_68(grey, box)
    problem = eyes_measurable(landmarks, box[2] - box[0])
    return (None, problem) if problem else (face_ear(landmarks), None)
