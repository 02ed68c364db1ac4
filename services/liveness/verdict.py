"""Per-track liveness evidence and the verdict it supports (pure: no I/O, no models)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.liveness.blink import BlinkDetector
from watchpost.messages import LivenessState


@dataclass(frozen=True)
class LivenessPolicy:
    window_seconds: float = 10.0
    min_frames: int = 15


@dataclass
class TrackEvidence:
    detector: BlinkDetector
    first_seen: float
    last_seen: float
    frames_seen: int = 0
    frames_with_eyes: int = 0
    first_eyes_at: float | None = None
    last_problem: str | None = None
    published: tuple | None = None
    touched: float = field(default=0.0, repr=False)  # monotonic time of the last frame, for expiry

    def observe(self, at: float, ear: float | None, problem: str | None) -> None:
        self.frames_seen += 1
        self.last_seen = at
        if ear is None:
            self.last_problem = problem
            return
        self.frames_with_eyes += 1
        if self.first_eyes_at is None:
            self.first_eyes_at = at
        self.detector.update(ear)


def decide(evidence: TrackEvidence, policy: LivenessPolicy) -> tuple[LivenessState, str]:
    blinks = evidence.detector.blinks
    if blinks:
        return "live", f"{blinks} blink(s) seen"
    if evidence.frames_with_eyes == 0:
        return "undecided", evidence.last_problem or "no frame with readable eyes yet"
    watched = evidence.last_seen - evidence.first_eyes_at
    if evidence.frames_with_eyes >= policy.min_frames and watched >= policy.window_seconds:
        return (
            "spoof",
            f"eyes visible for {watched:.1f}s over {evidence.frames_with_eyes} frames "
            "without a blink",
        )
    return "undecided", f"watching: {evidence.frames_with_eyes} frame(s) with eyes, no blink yet"
