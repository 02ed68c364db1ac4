import pytest

from services.aggregator.policy import (
    AlertPolicy,
    Recognition,
    TrackEvidence,
    check_quality,
    decide_alerts,
    grant_vote,
    recognition_of,
    usable,
    vote_identity,
)
from tests.support.values import present


def check(
    identity=1, distance=0.40, *, runner_up=0.90, detected=True, px=120, sharp=200.0, yaw=0.0
):
    """One recognition check on a detector box of good quality unless told otherwise."""
    name = {1: "Alice", 2: "Bob", None: None}[identity]
    return Recognition(identity, name, distance, runner_up, detected, px, sharp, yaw)


ALICE = check(1, 0.40)
ALICE_FAR = check(1, 0.55)
BOB = check(2, 0.35)
UNKNOWN = check(None, 0.80)


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
    vote = present(vote_identity(recognitions))
    assert (vote.identity_id, vote.votes, vote.total) == (identity, votes, len(recognitions))


def test_vote_reports_the_best_distance_of_the_winner():
    assert present(vote_identity([ALICE_FAR, ALICE, BOB])).best_distance == pytest.approx(0.40)
    assert vote_identity([]) is None


@pytest.mark.parametrize(
    ("recognitions", "liveness", "already", "expected"),
    [
        ([], "spoof", set(), []),  # nothing identified yet: wait for a snapshot
        ([UNKNOWN], "undecided", set(), ["unknown_person"]),
        ([UNKNOWN], "spoof", set(), ["spoof_attempt", "unknown_person"]),
        ([ALICE, ALICE], "undecided", set(), []),  # known, but not proven live: wait
        ([ALICE, ALICE], "live", set(), ["access_granted"]),
        ([ALICE], "live", set(), []),  # one check is no evidence: wait for the second
        ([ALICE, ALICE], "spoof", set(), ["spoof_attempt"]),  # a face on a photo is no access
        ([ALICE, ALICE], "live", {"access_granted"}, []),  # one alert per track and kind
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
    assert decide_alerts(known, AlertPolicy()) == []  # one check grants nothing
    known.recognitions.append(ALICE_FAR)
    assert [d.kind for d in decide_alerts(known, AlertPolicy())] == ["access_granted"]


from services.aggregator.policy import Claim, cooldown_key  # noqa: E402

KIOSK_FOR_ALICE = Claim("alice", 1)


@pytest.mark.parametrize(
    ("recognitions", "liveness", "claim", "expected"),
    [
        ([ALICE, ALICE], "live", KIOSK_FOR_ALICE, ["access_granted"]),
        ([ALICE], "live", KIOSK_FOR_ALICE, []),  # the right person, but one check: wait
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


def granted(recognitions, policy=None) -> bool:
    evidence = TrackEvidence(recognitions=list(recognitions), liveness="live")
    return "access_granted" in [d.kind for d in decide_alerts(evidence, policy or AlertPolicy())]


@pytest.mark.parametrize("distance", [0.50, 0.55, 0.59])
def test_a_look_alike_stranger_is_never_granted_from_one_check(distance):
    look_alike = check(1, distance, runner_up=distance + 0.2)
    assert not granted([look_alike])
    assert not granted([look_alike, UNKNOWN])  # nor by a tie with the check that says unknown
    # Even a policy asking for a single check wants it to be one of quality from the detector.
    one = AlertPolicy(grant_min_checks=1)
    assert not granted([check(1, distance, detected=False)], one)
    assert not granted([check(1, distance, px=40)], one)


@pytest.mark.parametrize(
    ("checks", "expected", "why"),
    [
        ([ALICE, ALICE], True, "two agreeing quality checks"),
        ([ALICE, check(1, detected=False)], False, "a tracker box is no evidence"),
        ([ALICE, check(1, detected=None)], False, "a box of unknown origin is no evidence"),
        ([ALICE, check(1, px=59)], False, "a face under the size gate"),
        ([ALICE, check(1, sharp=24.0)], False, "a blurred face"),
        ([ALICE, check(1, yaw=0.36)], False, "a turned head"),
        ([ALICE, check(1, yaw=-0.36)], False, "turned the other way"),
        ([ALICE, check(1, sharp=None)], False, "quality not measured"),
        ([ALICE, check(1, runner_up=0.43)], False, "Bob is almost as near: no margin"),
        ([ALICE, check(1, runner_up=None)], True, "nobody else enrolled: any margin"),
        ([ALICE, ALICE, BOB, BOB], False, "a split vote"),
        ([ALICE, ALICE, ALICE, UNKNOWN], True, "three of four, 75% of the weight"),
        ([ALICE, ALICE, check(None, 0.8), check(None, 0.8)], False, "half unknown"),
        # Weighting: two sharp frontal Alice checks outweigh one blurry, small Bob check.
        ([ALICE, ALICE, check(2, 0.35, px=60, sharp=30.0)], True, "a poor dissent weighs little"),
        # ...but two Alice checks of poor quality do not outweigh a sharp frontal Bob.
        (
            [check(1, px=60, sharp=30.0), check(1, px=60, sharp=30.0), BOB],
            False,
            "a good dissent weighs a lot",
        ),
    ],
)
def test_access_needs_evidence(checks, expected, why):
    assert granted(checks) is expected, why


def test_quality_weights_and_gates():
    policy = AlertPolicy()
    assert check_quality(ALICE, policy) == pytest.approx(1.0)
    assert check_quality(check(1, px=60, sharp=50.0, yaw=0.0), policy) == pytest.approx(0.3)
    assert check_quality(check(1, yaw=0.35), policy) == pytest.approx(0.5)
    assert check_quality(check(1, px=59), policy) is None
    vote = present(grant_vote([ALICE, ALICE_FAR, check(1, detected=False)], policy))
    assert (vote.identity_id, vote.checks, vote.usable) == (1, 2, 2)
    assert vote.best_distance == pytest.approx(0.40) and vote.share == pytest.approx(1.0)
    assert grant_vote([check(1, detected=False)], policy) is None


def test_the_grant_names_the_evidence_and_its_reason():
    evidence = TrackEvidence(
        recognitions=[ALICE_FAR, ALICE], liveness="live", liveness_reason="blinked"
    )
    (decision,) = decide_alerts(evidence, AlertPolicy())
    assert (decision.identity_id, decision.display_name) == (1, "Alice")
    assert decision.distance == pytest.approx(0.40)
    assert "2 quality checks of 2 agree" in decision.reason and "blinked" in decision.reason


def test_only_detector_checks_through_the_gates_are_usable_evidence():
    policy = AlertPolicy()
    drifted = check(None, 0.75, detected=False)  # a tracker box
    half_face = check(None, 0.80, px=53, sharp=5.0)  # as seen on two_people_1080p.mp4
    turned = check(1, 0.40, yaw=0.5)
    unknown_quality = check(1, 0.40, detected=None)  # an older recognition: no quality fields
    assert usable([ALICE, drifted, half_face, turned, unknown_quality, UNKNOWN], policy) == [
        ALICE,
        UNKNOWN,
    ]
    assert usable([drifted, half_face], policy) == []


def test_recognition_of_reads_every_field_the_gates_need():
    from watchpost.geometry import Box
    from watchpost.messages import RecognitionVerdict

    verdict = RecognitionVerdict(
        camera_id="door",
        track_id="t1",
        frame_seq=1,
        captured_at=1.0,
        box=Box(left=10, top=10, right=90, bottom=100),
        identity_id=1,
        display_name="Alice",
        distance=0.4,
        runner_up_distance=0.7,
        threshold=0.55,
        detected=True,
        sharpness=80.0,
        yaw=0.1,
    )
    assert recognition_of(verdict) == Recognition(1, "Alice", 0.4, 0.7, True, 80, 80.0, 0.1)
