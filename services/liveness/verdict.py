"""Per-track liveness evidence and the verdict it supports (pure: no I/O, no models)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from services.liveness.blink import BlinkDetector
from services.liveness.cues import TrackCues
from services.liveness.parallax import ParallaxTally, pooled_flatness
from watchpost.messages import AttackCue, LivenessState

# How the parallax cue (a face that moves like a flat picture) counts: "off" (not read into the
# verdict), "corroborates" (reported; flags a spoof together with a second cue), "decides" (flags
# a spoof alone, even after a blink: a bent print makes false blinks). docs/liveness.md.
ParallaxMode = Literal["off", "corroborates", "decides"]


@dataclass(frozen=True)
class LivenessPolicy:
    # A still print is caught by its missing blink: eyes watched this long without one is a
    # spoof. Long, because people reading or looking at a screen blink only a few times a minute.
    window_seconds: float = 20.0
    min_frames: int = 15  # frames with readable eyes before "no blink" can mean spoof
    spoof_threshold: float = 0.5  # P(attack) at or above which the passive check flags a track
    min_passive: int = 4  # crops the passive check needs before it may flag (or clear) a track
    passive_decides: bool = False  # may the passive check alone call a spoof?
    motion_threshold: float = 0.5  # share of the face's motion its surroundings share
    motion_min_pairs: int = 5  # frame pairs with the face moving before motion may flag
    motion_min_seconds: float = 0.5  # ...spread over at least this long
    edges_threshold: float = 0.5  # share of a frame around the face traced by straight edges
    edges_min_frames: int = 10
    min_live_seconds: float = 1.5  # in view at least this long before "live": cues need time
    parallax: ParallaxMode = "corroborates"
    parallax_threshold: float = 0.24  # pooled flatness at or above which a face is flat
    parallax_min_pairs: int = 5  # landmark pairs that moved beyond noise before it may flag
    parallax_min_seconds: float = 0.4  # ...spread over at least this long
    # Live without a blink: the head moved in depth against a still scene (its landmarks far
    # from flat, its surroundings still) and every other cue read clean. docs/liveness.md.
    head_motion: bool = True
    head_motion_max_flatness: float = 0.12  # pooled parallax flatness at most this: not flat
    head_motion_max_follow: float = 0.25  # motion cue at most this: the scene stayed still
    # Real tracks of this camera its passive threshold was fitted on (0: the model's global
    # threshold; services/liveness/calibration.py).
    passive_site_presentations: int = 0


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
    cues: TrackCues = field(default_factory=TrackCues)
    parallax: ParallaxTally = field(default_factory=ParallaxTally)
    spoof_reason: str | None = None  # latched: an attack seen once stays an attack
    # Latched like a blink: what first showed the head moving in depth against a still scene
    # (`head_motion_proof`).
    head_motion_reason: str | None = None
    calibration_recorded: bool = False  # its passive score went into the camera's calibration
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


class Judgement(NamedTuple):
    state: LivenessState
    reason: str
    cues: list[AttackCue]


def attack_cues(evidence: TrackEvidence, policy: LivenessPolicy) -> list[AttackCue]:
    """Each attack cue's reading on the track so far (cues with no reading are left out)."""
    cues = []
    if evidence.passive:
        score = float(np.mean(evidence.passive))
        cues.append(
            AttackCue(
                name="passive",
                score=round(score, 3),
                threshold=policy.spoof_threshold,
                samples=len(evidence.passive),
                flagged=len(evidence.passive) >= policy.min_passive
                and score >= policy.spoof_threshold,
                decides=policy.passive_decides,
            )
        )
    for cue in (
        evidence.cues.motion_cue(
            policy.motion_threshold, policy.motion_min_pairs, policy.motion_min_seconds
        ),
        evidence.cues.edges_cue(policy.edges_threshold, policy.edges_min_frames),
    ):
        if cue is not None:
            cues.append(cue)
    if policy.parallax != "off":
        cue = evidence.parallax.cue(
            policy.parallax_threshold,
            policy.parallax_min_pairs,
            decides=policy.parallax == "decides",
            min_seconds=policy.parallax_min_seconds,
        )
        if cue is not None:
            cues.append(cue)
    return cues


def head_motion_proof(
    evidence: TrackEvidence, cues: list[AttackCue], policy: LivenessPolicy
) -> str | None:
    """What shows the head moved in depth against a still scene, or None: at least
    `parallax_min_pairs` landmark pairs moved beyond noise and pooled they are far from flat (a
    print bent or tilted is flat; a head that turns, nods or talks is not), the motion cue read
    at least `motion_min_pairs` pairs with the face moving and its surroundings still (a replay
    moves with its screen), the passive check read at least `min_passive` crops under its
    threshold, and no cue is flagged. Every cue must speak and clear: this stands in for a blink,
    so it asks more than a blink does (which a single non-deciding cue does not hold back)."""
    if not policy.head_motion or any(c.flagged for c in cues):
        return None
    moving = evidence.parallax.moving_pairs()
    if (
        moving < policy.parallax_min_pairs
        or evidence.parallax.moving_span() < policy.parallax_min_seconds
    ):
        return None
    flatness = pooled_flatness(evidence.parallax.samples)
    motion = next((c for c in cues if c.name == "motion"), None)
    passive = next((c for c in cues if c.name == "passive"), None)
    if (
        flatness > policy.head_motion_max_flatness
        or motion is None
        or motion.samples < policy.motion_min_pairs
        or motion.score > policy.head_motion_max_follow
        or passive is None
        or passive.samples < policy.min_passive
    ):
        return None
    return (
        f"head moved in depth against a still scene (parallax {flatness:.2f}<="
        f"{policy.head_motion_max_flatness:.2f} over {moving} pairs, motion {motion.score:.2f}"
        f"<={policy.head_motion_max_follow:.2f} over {motion.samples}), no cue flagged"
    )


def describe(cues: list[AttackCue]) -> str:
    return ", ".join(
        f"{c.name} {c.score:.2f}{'>=' if c.flagged else '<'}{c.threshold:.2f} ({c.samples})"
        for c in cues
    )


def decide(evidence: TrackEvidence, policy: LivenessPolicy) -> Judgement:
    """The track's liveness and why, from its blinks and attack cues:

    - spoof, latched for the rest of the track: a cue that may decide alone flags it (a replayed
      face moving with its own background), or two cues flag it together, or the eyes were
      watched for `window_seconds` without one blink (a still print);
    - live: a blink was seen, or the head moved in depth against a still scene with every cue
      clean (`head_motion_proof`), the track has been in view `min_live_seconds` (so the cues
      had time to speak), and no cue that may decide alone reads over its threshold (on too few
      samples yet to flag); a single non-deciding cue is reported but does not hold a blink
      back; once live, a long stretch without a second blink does not undo it;
    - undecided otherwise, with what is missing.
    """
    cues = attack_cues(evidence, policy)
    evidence_note = f"; cues: {describe(cues)}" if cues else ""
    if evidence.passive and policy.passive_site_presentations:
        evidence_note += (
            f"; passive threshold fitted on this camera's "
            f"{policy.passive_site_presentations} real tracks"
        )
    flagged = [c for c in cues if c.flagged]
    if evidence.spoof_reason is None:
        deciding = [c for c in flagged if c.decides]
        if deciding or len(flagged) >= 2:
            names = " and ".join(c.name for c in (deciding or flagged))
            evidence.spoof_reason = f"attack cue {names} flags the face"
        elif (
            evidence.last_blink_at is None
            and evidence.head_motion_reason is None
            and evidence.frames_with_eyes >= policy.min_frames
            and evidence.watched_without_blink >= policy.window_seconds
        ):
            evidence.spoof_reason = (
                f"eyes visible for {evidence.watched_without_blink:.1f}s over "
                f"{evidence.frames_with_eyes} frames without a blink"
            )
    if evidence.spoof_reason is not None:
        return Judgement("spoof", evidence.spoof_reason + evidence_note, cues)
    if evidence.head_motion_reason is None:
        evidence.head_motion_reason = head_motion_proof(evidence, cues, policy)
    blinks = evidence.detector.blinks
    if evidence.last_blink_at is not None:
        seen = f"{blinks} blink(s) seen"
    elif evidence.head_motion_reason is not None:
        seen = evidence.head_motion_reason
    elif evidence.frames_with_eyes == 0:
        problem = evidence.last_problem or "no frame with readable eyes yet"
        return Judgement("undecided", problem + evidence_note, cues)
    else:
        return Judgement(
            "undecided",
            f"watching: {evidence.frames_with_eyes} frame(s) with eyes, no blink yet"
            + evidence_note,
            cues,
        )
    # Only a cue that may decide alone can hold a blinking track back: one whose measured error
    # on real people is too high to decide (the passive check, the edges) must not keep them
    # out either; it is reported, and counts when a second cue agrees (above).
    pending = [c for c in cues if c.decides and c.score >= c.threshold]  # too few samples yet
    if pending:
        return Judgement(
            "undecided",
            f"{seen}; {pending[0].name} looks like an attack, watching" + evidence_note,
            cues,
        )
    in_view = evidence.last_seen - evidence.first_seen
    if in_view < policy.min_live_seconds:
        return Judgement("undecided", f"{seen}; watching {in_view:.1f}s{evidence_note}", cues)
    return Judgement("live", seen + evidence_note, cues)
