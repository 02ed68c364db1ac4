"""Face boxes and the geometry done on them, in one place.

Two spellings of a box, both (left, top, right, bottom) in frame pixels with right and bottom
exclusive: `Box`, the validated model messages carry, and `BoxTuple`, the plain tuple the vision
code computes with (`Box.as_tuple()` and `Box.of()` convert). dlib counts its rectangles'
right/bottom inclusively: `watchpost.vision.faces.dlib_rect` converts, there only (this module
stays free of dlib, which the light services never load).
"""

from __future__ import annotations

from typing import TypeAlias

from pydantic import model_validator

from watchpost.wire import WireModel

BoxTuple: TypeAlias = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


class Box(WireModel):
    """A face box in frame pixels; right and bottom are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @model_validator(mode="after")
    def _positive_area(self) -> Box:
        if self.right <= self.left or self.bottom <= self.top:
            raise ValueError("box must have a positive width and height")
        return self

    @classmethod
    def of(cls, box: BoxTuple) -> Box:
        left, top, right, bottom = box
        return cls(left=int(left), top=int(top), right=int(right), bottom=int(bottom))

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> BoxTuple:
        return (self.left, self.top, self.right, self.bottom)


# The passive attack check sees a square around the face grown by this share of the face's size on
# every side: enough of the background for a phone's bezel or a paper edge, little enough that the
# face dominates. Training (services/liveness/training/) and inference cut it with `face_square`.
CROP_CONTEXT = 0.25


def face_square(box: BoxTuple, width: int, height: int, context: float = CROP_CONTEXT) -> BoxTuple:
    """The square centred on `box`, its side the box's larger side grown by `context` on each
    side, clipped to a `width` x `height` image (so near an edge it is no longer square)."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top) * (1 + 2 * context)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return (
        max(0, round(cx - side / 2)),
        max(0, round(cy - side / 2)),
        min(width, round(cx + side / 2)),
        min(height, round(cy + side / 2)),
    )


def grown(box: BoxTuple, margin: float, width: int, height: int) -> BoxTuple:
    """The box grown by `margin` of its size on every side, clipped to a `width` x `height`
    image."""
    left, top, right, bottom = box
    dx, dy = int((right - left) * margin), int((bottom - top) * margin)
    return (max(0, left - dx), max(0, top - dy), min(width, right + dx), min(height, bottom + dy))
