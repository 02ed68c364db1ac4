"""The alert policy: pure functions over one track's evidence. No I/O, table-tested.

Access needs evidence: `access_granted` follows only checks on boxes the detector found in that
very frame, that pass the quality gates (face size, sharpness, frontal pose), and at least
`grant_min_checks` of them must agree on one identity, each with a margin to the runner-up
identity; the vote weighs every check by its quality. Stranger alerts still count every check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypeGuard

from watchpost.messages import AlertKind, LivenessState, RecognitionVerdict


@dataclass(frozen=True)
class Recognition:
    identity_id: int | None
    display_name: str | None
    distance: float | None
    runner_up_distance: float | None = None  # the best match of another identity
    detected: bool | None = None  # None: not known, which is not evidence
    face_px: int | None = None
    sharpness: float | None = None
    yaw: float | None = None


def recognition_of(verdict: RecognitionVerdict) -> Recognition:
    """What the policy reads of one recognition verdict."""
    return Recognition(
        verdict.identity_id,
        verdict.display_name,
        verdict.distance,
        runner_up_distance=verdict.runner_up_distance,
        detected=verdict.detected,
        face_px=verdict.box.width,
        sharpness=verdict.sharpness,
        yaw=verdict.yaw,
    )


@dataclass(frozen=True)
class IdentityVote:
    identity_id: int | None
    display_name: str | None
    votes: int
    total: int
    best_distance: float | None


@dataclass
class TrackEvidence:
    recognitions: list[Recognition] = field(default_factory=list)
    liveness: LivenessState = "undecided"
    liveness_reason: str = ""
    alerted: set[AlertKind] = field(default_factory=set)


@dataclass(frozen=True)
class AlertPolicy:
    min_votes: int = 1  # recognition verdicts needed before a known identity counts
    # ...and before "unknown" counts: one bad first frame (blur, a blink, a turned head) must not
    # call an enrolled person a stranger; recognition re-checks unknown tracks quickly.
    min_unknown_votes: int = 2
    # Access: agreeing quality checks, the margin each needs to the runner-up identity, and the
    # share of the track's quality-weighted vote the identity must hold.
    grant_min_checks: int = 2
    grant_min_margin: float = 0.05
    grant_min_share: float = 0.6
    # Quality gates; a check that fails one is no evidence for access.
    min_face_px: int = 60
    min_sharpness: float = 25.0
    max_yaw: float = 0.35
    # The quality weight saturates at these (1.0 = a full-weight check).
    full_face_px: int = 100
    full_sharpness: float = 100.0


@dataclass(frozen=True)
class GrantVote:
    """The quality-weighted vote over a track's usable checks."""

    identity_id: int | None
    display_name: str | None
    checks: int  # usable checks agreeing on identity_id, each with the margin
    share: float  # their weight over the weight of every usable check
    best_distance: float | None
    smallest_margin: float | None
    usable: int  # checks that passed the gates


@dataclass(frozen=True)
class AlertDecision:
    kind: AlertKind
    reason: str
    identity_id: int | None = None  # who an access grant is for (the evidence vote's winner)
    display_name: str | None = None
    distance: float | None = None


def check_quality(r: Recognition, policy: AlertPolicy) -> float | None:
    """The weight of one check in the access vote, in (0, 1]; None when it fails a gate."""
    if not r.detected or r.face_px is None or r.sharpness is None or r.yaw is None:
        return None
    if (
        r.face_px < policy.min_face_px
        or r.sharpness < policy.min_sharpness
        or abs(r.yaw) > policy.max_yaw
    ):
        return None
    size = min(1.0, r.face_px / policy.full_face_px)
    sharp = min(1.0, r.sharpness / policy.full_sharpness)
    pose = 1.0 - abs(r.yaw) / (2 * policy.max_yaw)  # 1 frontal, 0.5 at the gate
    return size * sharp * pose


def usable(recognitions: list[Recognition], policy: AlertPolicy) -> list[Recognition]:
    """The checks that are evidence: on a box the detector found, through the quality gates.
    Access votes over these; so do sightings and unknown groups (a tracker box drifted onto
    half a face, or a blurred 50 px face, is on record nowhere)."""
    return [r for r in recognitions if check_quality(r, policy) is not None]


def margin_of(r: Recognition) -> float:
    """Distance from the best match to the best match of another identity (inf: none)."""
    if r.distance is None:
        return 0.0
    if r.runner_up_distance is None:
        return float("inf")
    return r.runner_up_distance - r.distance


def grant_vote(recognitions: list[Recognition], policy: AlertPolicy) -> GrantVote | None:
    """Who the track's usable checks name, weighted by quality (None: no usable check)."""
    weighted = [(r, w) for r in recognitions if (w := check_quality(r, policy)) is not None]
    if not weighted:
        return None
    weights: dict[int | None, float] = {}
    for r, w in weighted:
        weights[r.identity_id] = weights.get(r.identity_id, 0.0) + w
    total = sum(weights.values())
    winner = max(weights, key=lambda i: (weights[i], i is None))  # unknown wins a tie
    agreeing = [r for r, _ in weighted if r.identity_id == winner]
    with_margin = [r for r in agreeing if margin_of(r) >= policy.grant_min_margin]
    distances = [r.distance for r in agreeing if r.distance is not None]
    return GrantVote(
        identity_id=winner,
        display_name=agreeing[0].display_name,
        checks=len(with_margin) if winner is not None else 0,
        share=weights[winner] / total,
        best_distance=min(distances, default=None),
        smallest_margin=min((margin_of(r) for r in agreeing), default=None),
        usable=len(weighted),
    )


def grants(vote: GrantVote | None, policy: AlertPolicy) -> TypeGuard[GrantVote]:
    return (
        vote is not None
        and vote.identity_id is not None
        and vote.checks >= policy.grant_min_checks
        and vote.share >= policy.grant_min_share
    )


def vote_identity(recognitions: list[Recognition]) -> IdentityVote | None:
    """The identity most of a track's verdicts agree on (None = unknown); ties go to the
    identity with the closest match, and unknown wins a tie with a known identity (a tie is
    not confidence)."""
    if not recognitions:
        return None
    counts = Counter(r.identity_id for r in recognitions)

    def best_distance(identity_id: int | None) -> float:
        distances = [
            r.distance
            for r in recognitions
            if r.identity_id == identity_id and r.distance is not None
        ]
        return min(distances, default=float("inf"))

    top = max(counts.values())
    tied = [i for i, c in counts.items() if c == top]
    winner = None if None in tied else min(tied, key=best_distance)
    name = next((r.display_name for r in recognitions if r.identity_id == winner), None)
    distance = best_distance(winner)
    return IdentityVote(
        winner, name, top, len(recognitions), None if distance == float("inf") else distance
    )


@dataclass(frozen=True)
class Claim:
    """A camera or kiosk bound to a login: who should be in front of it."""

    login_name: str
    identity_id: int | None  # None when no enrolled identity has that login


def decide_alerts(
    evidence: TrackEvidence, policy: AlertPolicy, claim: Claim | None = None
) -> list[AlertDecision]:
    """Alerts this track now warrants that it has not raised yet (one per kind per track)."""
    vote = vote_identity(evidence.recognitions)
    if vote is None:  # no frame of the track identified yet: nothing to report, no snapshot
        return []
    decisions = []
    if evidence.liveness == "spoof":
        decisions.append(AlertDecision(AlertKind.SPOOF_ATTEMPT, evidence.liveness_reason))
    # A stranger takes that many checks *saying* unknown; a known face, that many checks in all.
    enough = (
        vote.votes >= policy.min_unknown_votes
        if vote.identity_id is None
        else vote.total >= policy.min_votes
    )
    if enough:
        if claim is not None and (
            vote.identity_id is None or vote.identity_id != claim.identity_id
        ):
            seen = vote.display_name or "nobody enrolled"
            decisions.append(
                AlertDecision(
                    AlertKind.IDENTITY_MISMATCH,
                    f"claimed login {claim.login_name!r}, but the face is {seen}",
                )
            )
        if vote.identity_id is None:
            decisions.append(
                AlertDecision(
                    AlertKind.UNKNOWN_PERSON,
                    f"no enrolled face within the threshold ({vote.votes}/{vote.total} checks)",
                )
            )
        elif evidence.liveness == "live":
            granted = grant_vote(evidence.recognitions, policy)
            if grants(granted, policy) and (
                claim is None or claim.identity_id == granted.identity_id
            ):
                decisions.append(
                    AlertDecision(
                        AlertKind.ACCESS_GRANTED,
                        f"{granted.display_name}: {granted.checks} quality checks of "
                        f"{vote.total} agree ({granted.share:.0%} of the weighted vote, margin "
                        f">= {granted.smallest_margin:.2f}); {evidence.liveness_reason}",
                        identity_id=granted.identity_id,
                        display_name=granted.display_name,
                        distance=granted.best_distance,
                    )
                )
    return [d for d in decisions if d.kind not in evidence.alerted]


PER_PERSON_COOLDOWN = (AlertKind.ACCESS_GRANTED, AlertKind.IDENTITY_MISMATCH)


def cooldown_key(kind: str, camera_id: str, identity_id: int | None) -> str:
    """What a cool-down is counted on: the person for known faces, the camera for the rest
    (a stranger re-tracked after an occlusion must not raise a second alert a second later)."""
    who = (
        identity_id
        if identity_id is not None
        and kind in (AlertKind.ACCESS_GRANTED, AlertKind.IDENTITY_MISMATCH)
        else "any"
    )
    return f"{kind}:{camera_id}:{who}"
