"""Per-track liveness evidence and the verdict it supports (pure: no I/O, no models)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from services.liveness.blink import BlinkDetector
from watchpost.messages import LivenessState


@dataclass(frozen=True)
class LivenessPolicy:
    window_seconds: float = 10.0  # a blink must have been seen within this long
    min_frames: int = 15  # frames with readable eyes before "no blink" can mean spoof
    spoof_threshold: float = 0.5  # P(spoof) at or above which one crop looks like an attack
    min_passive: int = 8  # passive scores needed before the passive check may decide
    passive_consistency: float = 0.7  # share of crops over the threshold that is "consistent"
    passive_decides: bool = False  # may a consistent passive score alone call a spoof?


# Frames of a track farther apart than this (dropped by a stalled reader, skipped as stale, a
# camera that stuttered) leave a gap that counts as time not watched: a live person must not be
# called a spoof for blinks nobody saw.
MAX_GAP_S = 0.5


@dataclass
class TrackEvidence:
    detector: BlinkDetector
    first_seen: float
    last_seen: float
    frames_seen: int = 0
    frames_with_eyes: int = 0
    first_eyes_at: float | None = None
    last_blink_at: float | None = None
    last_problem: str | None = None
    # Seconds the eyes were actually watched since the last blink (or since they were first
    # seen): gaps between frames beyond MAX_GAP_S are not counted.
    watched_without_blink: float = 0.0
    last_eyes_at: float | None = None
    passive: deque = field(default_factory=lambda: deque(maxlen=100))
    published: tuple | None = None
    touched: float = field(default=0.0, repr=False)  # monotonic time of the last frame, for expiry

    def observe(
        self, at: float, ear: float | None, problem: str | None, p_closed: float | None = None
    ) -> None:
        self.frames_seen += 1
        self.last_seen = at
        if ear is None:
            self.last_problem = problem
            return
        self.frames_with_eyes += 1
        if self.first_eyes_at is None:
            self.first_eyes_at = at
        if self.last_eyes_at is not None:
            gap = at - self.last_eyes_at
            self.watched_without_blink += gap if 0 < gap <= MAX_GAP_S else 0.0
        self.last_eyes_at = at
        if self.detector.update(at, ear, p_closed):
            self.last_blink_at = at
            self.watched_without_blink = 0.0

    def observe_passive(self, spoof_probability: float) -> None:
        self.passive.append(float(spoof_probability))

    @property
    def mean_passive(self) -> float | None:
        return float(np.mean(self.passive)) if self.passive else None


def passive_says_spoof(evidence: TrackEvidence, policy: LivenessPolicy) -> bool:
    if len(evidence.passive) < policy.min_passive:
        return False
    flagged = np.mean(np.asarray(evidence.passive) >= policy.spoof_threshold)
    return bool(
        evidence.mean_passive >= policy.spoof_threshold and flagged >= policy.passive_consistency
    )


def decide(evidence: TrackEvidence, policy: LivenessPolicy) -> tuple[LivenessState, str]:
    passive = evidence.mean_passive
    passive_note = "" if passive is None else f"; passive spoof score {passive:.2f}"
    if policy.passive_decides and passive_says_spoof(evidence, policy):
        return (
            "spoof",
            f"the passive check flags {len(evidence.passive)} crops as an attack{passive_note}",
        )
    blinks = evidence.detector.blinks
    if evidence.frames_with_eyes == 0:
        return "undecided", (
            evidence.last_problem or "no frame with readable eyes yet"
        ) + passive_note
    without_blink = evidence.watched_without_blink
    if without_blink < policy.window_seconds and evidence.last_blink_at is not None:
        if passive_says_spoof(evidence, policy):
            return (
                "undecided",
                f"{blinks} blink(s) seen, but the passive check disagrees{passive_note}",
            )
        return "live", f"{blinks} blink(s) seen{passive_note}"
    if evidence.frames_with_eyes >= policy.min_frames and without_blink >= policy.window_seconds:
        return "spoof", (
            f"eyes visible for {without_blink:.1f}s over {evidence.frames_with_eyes} frames "
            f"without a blink{passive_note}"
        )
    return (
        "undecided",
        f"watching: {evidence.frames_with_eyes} frame(s) with eyes, no blink yet{passive_note}",
    )
