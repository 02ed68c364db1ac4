import numpy as np
import pytest

from services.liveness.blink import (
    BlinkDetector,
    count_blinks,
    eye_aspect_ratio,
    eyes_measurable,
    face_ear,
)
from tests.support.values import present


def eye(height: float, width: float = 30.0) -> np.ndarray:
    """Six eye landmarks (p1..p6) of an eye `width` wide and `height` open."""
    return np.array(
        [
            [0, 0],
            [width / 3, -height / 2],
            [2 * width / 3, -height / 2],
            [width, 0],
            [2 * width / 3, height / 2],
            [width / 3, height / 2],
        ],
        float,
    )


def test_ear_of_a_known_shape():
    assert eye_aspect_ratio(eye(9.0)) == pytest.approx(0.3)
    assert eye_aspect_ratio(eye(0.0)) == 0.0
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0


def face(ear: float, *, left_scale: float = 1.0, nose_x: float = 60.0) -> np.ndarray:
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = eye(30 * ear) + np.array([20, 40])
    landmarks[42:48] = eye(30 * ear, 30 * left_scale) + np.array([70, 40])
    landmarks[30] = [nose_x, 60]
    return landmarks


def test_face_ear_and_measurability():
    assert face_ear(face(0.3)) == pytest.approx(0.3)
    assert eyes_measurable(face(0.3), 120) is None
    assert "turned" in present(eyes_measurable(face(0.3, left_scale=0.4), 120))
    assert "turned" in present(eyes_measurable(face(0.3, nose_x=0.0), 120))
    reason = eyes_measurable(face(0.3) / 4, 30)
    assert reason == "face too small to read the eyes: eyes 8 px wide, under 10 px"
    assert eyes_measurable(face(0.3) / 4, 30, min_eye_px=6) is None


def series(*runs: tuple[float, int]) -> list[float]:
    rng = np.random.default_rng(0)
    return [v + rng.normal(0, 0.01) for v, n in runs for _ in range(n)]


def test_blinks_are_counted_on_a_normal_eye():
    ears = series((0.32, 30), (0.10, 3), (0.32, 30), (0.12, 4), (0.32, 20))
    assert count_blinks(ears) == 2


def test_narrow_eyes_are_calibrated_on_their_own_open_ear():
    # Open EAR 0.19 would look closed against a fixed 0.2 threshold; a blink still shows.
    ears = series((0.19, 30), (0.07, 3), (0.19, 30))
    assert count_blinks(ears) == 1
    assert count_blinks(series((0.19, 60))) == 0


def test_eyes_shut_for_long_is_not_a_blink_and_a_closed_start_needs_an_open_first():
    assert count_blinks(series((0.32, 30), (0.08, 40), (0.32, 30))) == 0
    assert count_blinks(series((0.08, 3), (0.32, 30))) == 0


def ear_at(t: float, blinks: list[tuple[float, float]]) -> float:
    """EAR of an eye at time t (s) that closes fully for each (start, seconds) in `blinks`."""
    return 0.10 if any(start <= t < start + length for start, length in blinks) else 0.32


def sampled(fps: float, seconds: float, blinks: list[tuple[float, float]]) -> list[float]:
    return [ear_at(i / fps, blinks) for i in range(round(seconds * fps))]


@pytest.mark.parametrize("fps", [5.0, 12.5, 30.0, 60.0])
def test_blink_durations_are_in_seconds_whatever_the_frame_rate(fps):
    # A 0.25 s blink is one blink at every frame rate (at 5 fps: a single closed frame)...
    assert count_blinks(sampled(fps, 6.0, [(3.0, 0.25)]), fps=fps) == 1
    # ...two blinks two seconds apart are two...
    assert count_blinks(sampled(fps, 8.0, [(3.0, 0.25), (5.0, 0.2)]), fps=fps) == 2
    # ...and eyes shut for 2 s (looking down, dozing) are no blink, at any frame rate.
    assert count_blinks(sampled(fps, 8.0, [(3.0, 2.0)]), fps=fps) == 0


def test_the_longest_blink_is_a_setting_in_seconds():
    ears = sampled(30.0, 6.0, [(3.0, 0.7)])  # a slow 0.7 s closure
    assert count_blinks(ears, fps=30.0) == 0
    assert count_blinks(ears, fps=30.0, max_blink_seconds=0.8) == 1
    detector = BlinkDetector()
    for i, ear in enumerate(sampled(5.0, 6.0, [(3.0, 0.25)])):
        detector.update(100.0 + i / 5.0, ear)  # source clocks do not start at zero
    assert detector.blinks == 1


def test_a_still_photo_never_blinks():
    assert count_blinks([0.31] * 300) == 0


def test_noisy_dip_and_recovery_is_one_blink():
    ears = series((0.36, 30), (0.22, 1), (0.26, 1), (0.11, 2), (0.24, 1), (0.36, 30))
    assert count_blinks(ears) == 1


def test_fusing_the_cnn_needs_both_signals_to_agree_unless_one_is_sure():
    # A shallow EAR dip (half-way to the threshold) is a blink when the CNN is sure it is closed...
    ears = series((0.32, 30), (0.27, 3), (0.32, 10))
    sure = [0.02] * 30 + [0.98] * 3 + [0.02] * 10
    assert count_blinks(ears) == 0
    assert count_blinks(ears, sure) == 1
    # ...and the CNN alone cannot invent a blink while the EAR says the eyes are wide open.
    assert count_blinks(series((0.32, 43)), sure) == 0
