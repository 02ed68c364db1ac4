"""The HTTP contracts between services: what recognition and liveness answer, and what their
callers (the dashboard's enrolment, recognition's verify) parse the answers into.

One definition each, so a caller reads typed fields and a change to a reply is a change here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from watchpost.geometry import Box
from watchpost.messages import AttackCue, LivenessState

# One component of a 128-d dlib descriptor as a caller may send it: finite, and within a range no
# descriptor leaves (they are within about +-0.5), so it casts to float32 without overflowing.
EmbeddingComponent = Annotated[float, Field(ge=-10.0, le=10.0, allow_inf_nan=False)]


class FaceOut(BaseModel):
    """One face recognition found in an image (`POST /v1/faces`, `/v1/identify`)."""

    box: Box
    embedding: list[float]
    identity_id: int | None = None
    display_name: str | None = None
    distance: float | None = None


class FacesOut(BaseModel):
    width: int
    height: int
    faces: list[FaceOut] = Field(description="Largest first.")


class LivenessReport(BaseModel):
    """Liveness's judgement of a burst of frames (`POST /v1/liveness`)."""

    state: LivenessState
    reason: str
    blinks: int
    frames_seen: int
    frames_with_face: int
    frames_with_eyes: int
    open_ear: float | None
    passive_score: float | None
    passive_frames: int
    cues: list[AttackCue]


class VerifyOut(BaseModel):
    """Recognition's verification of a claimed login over a burst (`POST /v1/verify`)."""

    login_name: str
    identity_id: int
    display_name: str
    match: bool = Field(description="The median distance over the frames is within the threshold")
    distance: float = Field(
        description="Median over frames of the identity's score (mean distance of its k nearest "
        "samples)"
    )
    best_distance: float
    threshold: float
    frames: int
    frames_with_face: int
    liveness: LivenessReport | None = Field(
        None, description="The liveness service's report on the frames"
    )
    liveness_note: str | None = None


class NearestIn(BaseModel):
    """A face about to be enrolled, placed in recognition's gallery (`POST /v1/gallery/nearest`):
    the dashboard's enrolment checks ask this instead of reading every sample."""

    embedding: list[EmbeddingComponent] = Field(min_length=128, max_length=128)
    identity_id: int | None = Field(
        None, description="The person it is for (their own samples are set apart); none: new"
    )


class Neighbour(BaseModel):
    identity_id: int
    display_name: str
    distance: float = Field(description="To this identity's nearest sample")


class NearestOut(BaseModel):
    """Where the face falls in the gallery: the person's own samples, and the nearest sample of
    anyone else (found by the approximate index at scale, so it may miss a neighbour now and
    then: docs/recognition.md)."""

    own_samples: int
    own_nearest: float | None = Field(description="Distance to the nearest own sample")
    other: Neighbour | None = Field(description="The nearest sample of another identity")
    approximate: bool
