"""A kiosk's burst of frames must show one face in one place: no splicing.

An attacker could send a victim's photo for the frames that are matched and their own blinking
face for the frames the liveness check reads. So before either answer counts, every frame of a
burst must show a face, all faces must be the same person (embeddings close to each other, not
only to the claimed identity) and the face may only move as a head moves between frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from watchpost.geometry import BoxTuple as Box

SAME_PERSON = 0.5  # the largest distance between two embeddings of one burst (1:N uses 0.6)
MAX_JUMP = 0.5  # face widths the face's centre may move between consecutive frames
MAX_SCALE = 1.5  # ...and the factor its width may change by
MAX_MISSING = 0.2  # share of frames that may show no face (a blink, motion blur)


@dataclass(frozen=True)
class BurstFace:
    index: int  # frame number in the burst
    box: Box
    embedding: np.ndarray


def splice_problem(faces: list[BurstFace], frames: int) -> str | None:
    """Why the burst is not one continuous take of one face, or None if it is."""
    if frames < 2:
        return None
    missing = frames - len(faces)
    if missing > MAX_MISSING * frames:
        return f"{missing} of {frames} frames show no face"
    embeddings = np.stack([f.embedding for f in faces])
    spread = np.linalg.norm(embeddings[:, None, :] - embeddings[None, :, :], axis=2)
    worst = np.unravel_index(int(spread.argmax()), spread.shape)
    if spread[worst] > SAME_PERSON:
        a, b = faces[worst[0]].index, faces[worst[1]].index
        return (
            f"frames {a} and {b} show different faces (distance {spread[worst]:.2f} > "
            f"{SAME_PERSON})"
        )
    for before, after in pairwise(faces):
        width = max(1, before.box[2] - before.box[0])
        steps = after.index - before.index
        shift = np.hypot(
            (after.box[0] + after.box[2] - before.box[0] - before.box[2]) / 2,
            (after.box[1] + after.box[3] - before.box[1] - before.box[3]) / 2,
        )
        scale = (after.box[2] - after.box[0]) / width
        if shift > MAX_JUMP * width * steps or not 1 / MAX_SCALE <= scale <= MAX_SCALE:
            return f"the face jumps between frames {before.index} and {after.index}"
    return None
