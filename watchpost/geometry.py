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
