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
    assert [d.kind for d in decide_alerts(evidence, AlertPolicy())] == expected


def test_min_votes_delays_the_identity_decision():
    evidence = TrackEvidence(recognitions=[UNKNOWN])
    assert decide_alerts(evidence, AlertPolicy(min_votes=2)) == []
    evidence.recognitions.append(UNKNOWN)
    assert [d.kind for d in decide_alerts(evidence, AlertPolicy(min_votes=2))] == ["unknown_person"]
