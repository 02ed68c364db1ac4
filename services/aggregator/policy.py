"""The alert policy: pure functions over one track's evidence. No I/O, table-tested."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from watchpost.messages import AlertKind, LivenessState


@dataclass(frozen=True)
class Recognition:
    identity_id: int | None
    display_name: str | None
    distance: float | None


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


@dataclass(frozen=True)
class AlertDecision:
    kind: AlertKind
    reason: str


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
        decisions.append(AlertDecision("spoof_attempt", evidence.liveness_reason))
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
                    "identity_mismatch",
                    f"claimed login {claim.login_name!r}, but the face is {seen}",
                )
            )
        if vote.identity_id is None:
            decisions.append(
                AlertDecision(
                    "unknown_person",
                    f"no enrolled face within the threshold ({vote.votes}/{vote.total} checks)",
                )
            )
        elif evidence.liveness == "live" and (
            claim is None or claim.identity_id == vote.identity_id
        ):
            decisions.append(
                AlertDecision(
                    "access_granted",
                    f"{vote.display_name}: {vote.votes}/{vote.total} checks agree; "
                    f"{evidence.liveness_reason}",
                )
            )
    return [d for d in decisions if d.kind not in evidence.alerted]


def cooldown_key(kind: str, camera_id: str, identity_id: int | None) -> str:
    """What a cool-down is counted on: the person for known faces, the camera for the rest
    (a stranger re-tracked after an occlusion must not raise a second alert a second later)."""
    who = (
        identity_id
        if identity_id is not None and kind in ("access_granted", "identity_mismatch")
        else "any"
    )
    return f"{kind}:{camera_id}:{who}"
