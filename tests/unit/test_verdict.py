"""The liveness verdict of one track: blinks, the attack cues, and how they combine."""

from dataclasses import replace

import pytest

from services.liveness.blink import BlinkDetector
from services.liveness.cues import MotionSample
from services.liveness.verdict import LivenessPolicy, TrackEvidence, decide, head_motion_proof

POLICY = LivenessPolicy(window_seconds=5.0, min_frames=15, min_live_seconds=1.0)


def series(*runs: tuple[float, int]) -> list[float]:
    return [value for value, count in runs for _ in range(count)]


BLINKING = series((0.32, 30), (0.1, 3), (0.32, 10))  # a blink at 1 s, 1.4 s in view
STILL = [0.31] * 40


def evidence(
    ears, passive=(), motion=(), edges=(), *, fps=30.0, motion_every=0.15
) -> TrackEvidence:
    """A track's evidence; its motion pairs `motion_every` seconds apart (the cue's lag)."""
    e = TrackEvidence(detector=BlinkDetector(), first_seen=0.0, last_seen=0.0)
    for i, ear in enumerate(ears):
        e.observe(i / fps, ear, None if ear is not None else "face turned away from the camera")
    for score in passive:
        e.observe_passive(score)
    for i, follows in enumerate(motion):
        e.cues.observe_motion(MotionSample(face=0.05, follows=follows), i * motion_every)
    for score in edges:
        e.cues.observe_edges(score)
    return e


def test_blinks_and_the_window():
    assert decide(evidence(BLINKING), POLICY).state == "live"
    state, reason, _ = decide(evidence([0.31] * 200), POLICY)  # 6.7 s, never a blink
    assert state == "spoof" and "without a blink" in reason
    assert decide(evidence([0.31] * 60), POLICY).state == "undecided"  # 2 s: too early
    state, reason, _ = decide(evidence([None] * 300), POLICY)
    assert state == "undecided" and "turned" in reason
    assert decide(evidence([0.31] * 2), POLICY) == (
        "undecided",
        "watching: 2 frame(s) with eyes, no blink yet",
        [],
    )


def test_a_blink_is_live_only_after_the_cues_had_time():
    early = series((0.32, 10), (0.1, 3), (0.32, 5))  # blink at 0.3 s, 0.6 s in view
    state, reason, _ = decide(evidence(early), POLICY)
    assert state == "undecided" and "watching 0.6s" in reason


def test_a_track_that_blinked_stays_live_through_a_long_stretch_without_a_second_blink():
    """People reading or watching a screen blink a few times a minute."""
    ears = series((0.32, 30), (0.1, 3), (0.32, 600))  # one blink, then 20 s of none
    assert decide(evidence(ears), POLICY).state == "live"


def test_frames_nobody_saw_are_not_time_without_a_blink():
    """A stalled reader sees 12 s of video in 3 s of frames: only watched seconds count."""
    gappy = TrackEvidence(detector=BlinkDetector(), first_seen=0.0, last_seen=0.0)
    for second in range(4):
        for i in range(30):
            gappy.observe(second * 4 + i / 30, 0.31, None)
    assert gappy.watched_without_blink < 4.0
    assert decide(gappy, POLICY).state == "undecided"
    assert decide(evidence([0.31] * 400), POLICY).state == "spoof"


def test_a_replay_that_blinks_is_a_spoof_by_its_motion_and_stays_one():
    """A phone replaying a video blinks; its face moves with its own background."""
    replay = evidence(BLINKING, motion=[0.8, 0.7, 0.65, 0.9, 0.6])
    state, reason, cues = decide(replay, POLICY)
    assert state == "spoof" and "attack cue motion" in reason
    (motion,) = cues
    assert motion.name == "motion" and motion.flagged and motion.samples == 5
    assert "motion 0.73>=0.50 (5)" in reason  # the evidence travels with the verdict
    # Latched: later still frames (no motion samples) and more blinks do not undo it.
    for i in range(100):
        replay.observe(2.0 + i / 30, 0.32 if i % 20 else 0.1, None)
    assert decide(replay, POLICY).state == "spoof"


def test_motion_needs_enough_pairs_and_a_real_head_moving_against_the_scene_is_live():
    # Too few pairs to flag, but over the line: not live yet either.
    state, reason, (motion,) = decide(evidence(BLINKING, motion=[0.9] * 4), POLICY)
    assert state == "undecided" and not motion.flagged and "motion looks like an attack" in reason
    state, _, (motion,) = decide(evidence(BLINKING, motion=[0.05, 0.0, 0.2, 0.1, 0.0]), POLICY)
    assert state == "live" and not motion.flagged


def test_motion_pairs_must_span_half_a_second_before_they_flag():
    """Five pairs on consecutive frames are one moment seen five times (a face printed on a
    shirt, found for a few frames, moves with the shirt): over the line, so not live, but no
    spoof alarm until the pairs span `motion_min_seconds`."""
    flash = evidence(BLINKING, motion=[0.9] * 5, motion_every=1 / 30)  # 0.13 s
    state, reason, (motion,) = decide(flash, POLICY)
    assert flash.cues.motion_span() == pytest.approx(4 / 30)
    assert state == "undecided" and not motion.flagged and "motion looks like an attack" in reason

    def spread():
        return evidence(BLINKING, motion=[0.9] * 5, motion_every=0.13)  # 0.52 s

    assert decide(spread(), replace(POLICY, motion_min_seconds=0.6)).state == "undecided"
    assert decide(spread(), POLICY).state == "spoof"


def test_a_passive_check_that_may_not_decide_neither_blocks_nor_clears():
    """Its measured BPCER on unseen cameras is too high to decide: it is reported with the
    verdict, and counts only when a second cue agrees."""
    state, reason, (passive,) = decide(evidence(BLINKING, passive=[0.9] * 10), POLICY)
    assert state == "live" and passive.flagged and "passive 0.90>=0.50 (10)" in reason
    assert decide(evidence(STILL, passive=[0.9] * 10), POLICY).state == "undecided"
    deciding = LivenessPolicy(
        window_seconds=5.0, min_frames=15, passive_decides=True, min_live_seconds=1.0
    )
    state, reason, _ = decide(evidence(STILL, passive=[0.9] * 10), deciding)
    assert state == "spoof" and "attack cue passive" in reason
    # Allowed to decide, it also holds a blinking track back while it has too few crops.
    assert decide(evidence(BLINKING, passive=[0.9] * 3), deciding).state == "undecided"
    assert decide(evidence(BLINKING, passive=[0.1] * 10), deciding).state == "live"


def test_edges_never_decide_alone_but_two_flagged_cues_do():
    assert decide(evidence(BLINKING, edges=[0.8] * 12), POLICY).state == "live"
    both = evidence(STILL, passive=[0.9] * 10, edges=[0.8] * 12)
    state, reason, _ = decide(both, POLICY)
    assert state == "spoof" and "passive and edges" in reason
    # ...even when the person blinks: two independent cues agreeing is an attack.
    assert decide(evidence(BLINKING, passive=[0.9] * 10, edges=[0.8] * 12), POLICY).state == "spoof"


def test_a_camera_threshold_is_judged_against_and_said_in_the_reason():
    """The same passive readings (0.6, a real person on a camera whose real people score high)
    flag against the model's global threshold but not against the camera's own one, and the
    reason says where the threshold came from."""

    readings = [0.6] * 6
    _, reason, cues = decide(
        evidence(BLINKING, passive=readings), replace(POLICY, spoof_threshold=0.43)
    )
    (passive,) = cues
    assert passive.flagged and passive.threshold == 0.43
    assert "fitted on this camera" not in reason
    site = replace(POLICY, spoof_threshold=0.72, passive_site_presentations=40)
    _, reason, cues = decide(evidence(BLINKING, passive=readings), site)
    (passive,) = cues
    assert not passive.flagged and passive.threshold == 0.72
    assert reason.endswith("passive threshold fitted on this camera's 40 real tracks")


def with_parallax(
    e: TrackEvidence, flatness: float, pairs: int, *, every: float = 0.1
) -> TrackEvidence:
    """`pairs` landmark pairs that moved beyond noise, each `flatness` flat, `every` seconds
    apart (0.1: NUAA's sequences at 10 fps, where the cue's levels were chosen)."""
    from services.liveness.parallax import ParallaxSample

    e.parallax.samples = [
        ParallaxSample(residual=0.05, flatness=flatness, at=i * every) for i in range(pairs)
    ]
    return e


def test_parallax_pairs_must_span_the_time_five_pairs_took_where_it_was_tuned():
    """Five pairs at 10 fps span 0.4 s; with a detection on every frame at 30 fps five pairs
    are a sixth of a second, one moment of a turning head: not enough to flag, nor to prove
    life by head motion."""
    policy = replace(POLICY, parallax="decides", passive_decides=False)
    assert decide(with_parallax(evidence(BLINKING), 0.9, 5), policy).state == "spoof"
    brief = with_parallax(evidence(BLINKING), 0.9, 5, every=1 / 30)
    state, _, cues = decide(brief, policy)
    (parallax,) = cues
    assert parallax.name == "parallax" and not parallax.flagged and state != "spoof"
    assert decide(with_parallax(evidence(BLINKING), 0.9, 13, every=1 / 30), policy).state == (
        "spoof"
    )
    moving = head_moving()
    assert decide(moving, POLICY).state == "live"
    still = head_moving()
    with_parallax(still, 0.05, 10, every=0.03)  # 0.27 s of pairs
    assert head_motion_proof(still, [], POLICY) is None


def test_parallax_off_by_policy_is_not_read_into_the_verdict():

    off = replace(POLICY, parallax="off")
    state, reason, cues = decide(with_parallax(evidence(BLINKING), 0.9, 10), off)
    assert state == "live" and cues == [] and "parallax" not in reason
    # By default it corroborates: reported, and a blinking track it alone flags stays live.
    state, reason, (parallax,) = decide(with_parallax(evidence(BLINKING), 0.9, 10), POLICY)
    assert state == "live" and parallax.flagged and not parallax.decides
    assert "parallax 0.90>=0.24 (10)" in reason


@pytest.mark.parametrize(
    ("mode", "flatness", "pairs", "passive", "state", "because"),
    [
        # a real head: parallax of its own, never flat
        ("decides", 0.03, 20, (), "live", "parallax 0.03<0.20 (20)"),
        ("corroborates", 0.03, 20, (0.9,) * 10, "live", "parallax 0.03<0.20 (20)"),
        # a bent print that "blinked" (its bending moved the eye landmarks)
        ("decides", 0.45, 20, (), "spoof", "attack cue parallax flags the face"),
        ("corroborates", 0.45, 20, (), "live", "parallax 0.45>=0.20 (20)"),
        ("corroborates", 0.45, 20, (0.9,) * 10, "spoof", "attack cue passive and parallax"),
        # flat on too few pairs: a deciding cue holds the blink back, watching
        ("decides", 0.45, 3, (), "undecided", "parallax looks like an attack, watching"),
        ("corroborates", 0.45, 3, (), "live", "parallax 0.45<0.20 (3)"),  # "<": not flagged
    ],
)
def test_parallax_table(mode, flatness, pairs, passive, state, because):

    policy = replace(POLICY, parallax=mode, parallax_threshold=0.2, parallax_min_pairs=5)
    judged, reason, cues = decide(
        with_parallax(evidence(BLINKING, passive=passive), flatness, pairs), policy
    )
    assert judged == state and because in reason
    (parallax,) = [c for c in cues if c.name == "parallax"]
    assert parallax.decides == (mode == "decides") and parallax.samples == pairs
    assert parallax.flagged == (flatness >= 0.2 and pairs >= 5)


def test_a_flat_face_stays_a_spoof_once_flagged():

    policy = replace(POLICY, parallax="decides", parallax_threshold=0.2, parallax_min_pairs=5)
    bent = with_parallax(evidence(BLINKING), 0.45, 6)
    assert decide(bent, policy).state == "spoof"
    bent.parallax.samples = []  # later the print is held still: nothing moves beyond noise
    assert decide(bent, policy).state == "spoof"


def head_moving(ears=STILL, *, flatness=0.05, pairs=10, motion=(0.0,) * 6, passive=(0.1,) * 5):
    """A track that never blinked, whose head moved: `pairs` landmark pairs `flatness` flat."""
    return with_parallax(evidence(ears, passive=passive, motion=motion), flatness, pairs)


@pytest.mark.parametrize(
    ("changed", "state", "because"),
    [
        ({}, "live", "head moved in depth against a still scene (parallax 0.05<=0.12 over 10"),
        # a print moved by hand: flat (flagged or not, it is no proof)
        ({"flatness": 0.3}, "undecided", "no blink yet"),
        ({"flatness": 0.15}, "undecided", "no blink yet"),
        # too little motion to say: 4 moving pairs, 4 motion pairs
        ({"pairs": 4}, "undecided", "no blink yet"),
        ({"motion": (0.0,) * 4}, "undecided", "no blink yet"),
        # the surroundings moved partly with the face (not flagged at 0.5, no proof either)
        ({"motion": (0.4,) * 6}, "undecided", "no blink yet"),
        # the passive check must have read the face, and not flag it
        ({"passive": (0.1,) * 3}, "undecided", "no blink yet"),
        ({"passive": (0.9,) * 5}, "undecided", "passive 0.90>=0.50 (5)"),
    ],
)
def test_a_head_moving_in_depth_against_a_still_scene_is_live_without_a_blink(
    changed, state, because
):
    judged, reason, _ = decide(head_moving(**changed), POLICY)
    assert judged == state and because in reason


def test_the_head_motion_route_asks_every_cue_to_clear_and_can_be_turned_off():

    edged = head_moving()
    for score in [0.8] * 12:
        edged.cues.observe_edges(score)  # a frame around the face: flagged, not deciding
    assert decide(edged, POLICY).state == "undecided"
    off = replace(POLICY, head_motion=False)
    state, reason, _ = decide(head_moving(), off)
    assert state == "undecided" and "no blink yet" in reason
    early = head_moving(ears=[0.31] * 20)  # 0.6 s in view: the cues had no time yet
    state, reason, _ = decide(early, POLICY)
    assert state == "undecided" and "watching 0.6s" in reason


def test_a_head_motion_proof_stays_like_a_blink_but_an_attack_still_latches():
    track = head_moving()
    assert decide(track, POLICY).state == "live"
    # Then 20 s of still frames without a blink: not the still print the window is for.
    for i in range(600):
        track.observe(1.3 + i / 30, 0.31, None)
    track.parallax.samples = []  # nothing moves any more
    state, reason, _ = decide(track, POLICY)
    assert state == "live" and "head moved in depth" in reason
    for i, follows in enumerate([0.9] * 10):  # then it moves with its own background: a replay
        track.cues.observe_motion(MotionSample(face=0.05, follows=follows), 21.3 + i / 10)
    state, reason, _ = decide(track, POLICY)
    assert state == "spoof" and "attack cue motion" in reason
