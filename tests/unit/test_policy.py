import pytest

from services.aggregator.policy import (
    AlertPolicy,
    Recognition,
    TrackEvidence,
    decide_alerts,
    vote_identity,
)

ALICE = Recognition(1, "Alice", 0.40)
ALICE_FAR = Recognition(1, "Alice", 0.55)
BOB = Recognition(2, "Bob", 0.35)
UNKNOWN = Recognition(None, None, 0.80)


@pytest.mark.parametrize(
    ("recognitions", "identity", "votes"),
    [
        ([ALICE], 1, 1),
        ([ALICE, ALICE_FAR, BOB], 1, 2),
        ([UNKNOWN, UNKNOWN, ALICE], None, 2),
        ([ALICE, BOB], 2, 1),  # a tie goes to the closer match
        ([ALICE, UNKNOWN], None, 1),  # a tie with unknown is not confidence
    ],
)
def test_vote_identity(recognitions, identity, votes):
    vote = vote_identity(recognitions)
    assert (vote.identity_id, vote.votes, vote.total) == (identity, votes, len(recognitions))


def test_vote_reports_the_best_distance_of_the_winner():
    assert vote_identity([ALICE_FAR, ALICE, BOB]).best_distance == pytest.approx(0.40)
    assert vote_identity([]) is None


@pytest.mark.parametrize(
    ("recognitions", "liveness", "already", "expected"),
    [
        ([], "spoof", set(), []),  # nothing identified yet: wait for a snapshot
        ([UNKNOWN], "undecided", set(), ["unknown_person"]),
        ([UNKNOWN], "spoof", set(), ["spoof_attempt", "unknown_person"]),
        ([ALICE], "undecided", set(), []),  # known, but not proven live: wait
        ([ALICE], "live", set(), ["access_granted"]),
        ([ALICE], "spoof", set(), ["spoof_attempt"]),  # a known face on a photo is no access
        ([ALICE], "live", {"access_granted"}, []),  # one alert per track and kind
        ([UNKNOWN], "live", {"unknown_person"}, []),
    ],
)
def test_decide_alerts(recognitions, liveness, already, expected):
    evidence = TrackEvidence(
        recognitions=list(recognitions), liveness=liveness, alerted=set(already)
    )
    assert [d.kind for d in decide_alerts(evidence, AlertPolicy(min_unknown_votes=1))] == expected


def test_a_stranger_needs_two_agreeing_checks_by_default():
    evidence = TrackEvidence(recognitions=[UNKNOWN])
    assert decide_alerts(evidence, AlertPolicy()) == []  # one blurred first frame proves nothing
    evidence.recognitions.append(ALICE)
    assert decide_alerts(evidence, AlertPolicy()) == []  # a tie with unknown: wait
    evidence.recognitions.append(UNKNOWN)
    assert [d.kind for d in decide_alerts(evidence, AlertPolicy())] == ["unknown_person"]
    known = TrackEvidence(recognitions=[ALICE], liveness="live")
    assert [d.kind for d in decide_alerts(known, AlertPolicy())] == [
        "access_granted"
    ]  # one is enough


from services.aggregator.policy import Claim, cooldown_key  # noqa: E402

KIOSK_FOR_ALICE = Claim("alice", 1)


@pytest.mark.parametrize(
    ("recognitions", "liveness", "claim", "expected"),
    [
        ([ALICE], "live", KIOSK_FOR_ALICE, ["access_granted"]),
        ([BOB], "live", KIOSK_FOR_ALICE, ["identity_mismatch"]),  # someone else at Alice's kiosk
        ([UNKNOWN], "undecided", KIOSK_FOR_ALICE, ["identity_mismatch", "unknown_person"]),
        ([ALICE], "live", Claim("carol", None), ["identity_mismatch"]),  # login nobody enrolled
        ([BOB], "spoof", KIOSK_FOR_ALICE, ["spoof_attempt", "identity_mismatch"]),
    ],
)
def test_claimed_logins(recognitions, liveness, claim, expected):
    evidence = TrackEvidence(recognitions=list(recognitions), liveness=liveness)
    assert [
        d.kind for d in decide_alerts(evidence, AlertPolicy(min_unknown_votes=1), claim)
    ] == expected


def test_cooldowns_count_per_person_when_known_and_per_camera_otherwise():
    assert cooldown_key("access_granted", "door", 7) == "access_granted:door:7"
    assert cooldown_key("identity_mismatch", "kiosk", 7) == "identity_mismatch:kiosk:7"
    assert cooldown_key("unknown_person", "door", None) == "unknown_person:door:any"
    assert cooldown_key("spoof_attempt", "door", 7) == "spoof_attempt:door:any"
