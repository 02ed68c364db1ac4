"""The landmark-parallax cue: flatness of the motion between two landmark sets of one face.

The landmarks are dlib's, fitted on a real photo; a "print tilted by hand" is the same photo
warped by the affine map a tilt away from the camera makes (foreshortening and a little shear),
with the landmarks fitted again on the warped frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.liveness.parallax import (
    MIN_RESIDUAL,
    ParallaxSample,
    ParallaxTally,
    parallax,
    pooled_flatness,
)
from tests.conftest import require_data
from tests.support.frames import load_rgb
from watchpost.images import to_grey
from watchpost.vision.faces import detect_faces


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, np.ndarray]:
    """(grey frame, its face's 68 landmarks) of a real photo."""
    from services.liveness.eyes import face_landmarks

    rgb = load_rgb(require_data("faces/test/obama1.jpg"))
    (box,) = detect_faces(rgb, upsample=1)[:1]
    grey = to_grey(rgb)
    return grey, face_landmarks(grey, box)


def warped_landmarks(grey: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The frame warped by the 2x3 `matrix` (a print moved in the hand) and its face's landmarks
    fitted again on the warped pixels."""
    from services.liveness.eyes import face_landmarks

    h, w = grey.shape
    moved = cv2.warpAffine(grey, matrix, (w, h), flags=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(moved, cv2.COLOR_GRAY2RGB)
    (box,) = detect_faces(rgb, upsample=1)[:1]
    return face_landmarks(moved, box)


def about_centre(grey: np.ndarray, linear: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    centre = np.array([w / 2, h / 2])
    return np.column_stack([linear, centre - linear @ centre]).astype(np.float64)


@pytest.mark.data
def test_a_print_tilted_in_the_hand_reads_flat(photo):
    grey, before = photo
    # Tilted about 30 degrees about its vertical axis and sheared a little: an affine map.
    tilt = about_centre(grey, np.array([[np.cos(np.radians(30)), 0.08], [0.04, 1.0]]))
    after = warped_landmarks(grey, tilt)
    sample = parallax(before, after)
    assert sample is not None
    assert sample.residual > 2 * MIN_RESIDUAL  # far more than a rigid move
    assert sample.flatness > 0.6  # and most of it affine (the rest: refitting noise)


@pytest.mark.data
def test_a_rigid_move_leaves_only_landmark_noise(photo):
    grey, before = photo
    angle = np.radians(8)
    turn = 1.1 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    after = warped_landmarks(grey, about_centre(grey, turn))
    sample = parallax(before, after)
    assert sample is not None
    assert sample.residual < 1.5 * MIN_RESIDUAL  # refitting noise, not a shape change
    assert pooled_flatness([sample]) == 0.0 or sample.residual >= MIN_RESIDUAL


def test_non_affine_motion_is_not_flat():
    """Parallax of a 3-D head turn (nose out, jaw back): points shift by their depth."""
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, (68, 2))
    points[36:42] = [[20 + i, 40] for i in range(6)]
    points[42:48] = [[70 + i, 40] for i in range(6)]
    depth = 30 * np.sin(points[:, 0] / 100 * np.pi)  # the middle of the face nearest
    turned = points.copy()
    turned[:, 0] += 0.3 * depth
    sample = parallax(points, turned)
    assert sample is not None and sample.flatness < 0.2
    affine = points @ np.array([[0.85, 0.1], [0.05, 1.0]]).T + [4, -2]
    flat = parallax(points, affine)
    assert flat is not None and flat.flatness > 0.99


def test_bad_landmarks_are_refused_or_unreadable():
    with pytest.raises(ValueError, match="68, 2"):
        parallax(np.zeros((5, 2)), np.zeros((5, 2)))
    assert parallax(np.zeros((68, 2)), np.zeros((68, 2))) is None  # eyes on one point


def test_pooled_flatness_weighs_pairs_by_their_motion_and_ignores_noise():
    still = ParallaxSample(residual=MIN_RESIDUAL / 2, flatness=1.0)  # noise: ignored
    small = ParallaxSample(residual=0.03, flatness=0.9)
    large = ParallaxSample(residual=0.09, flatness=0.0)
    assert pooled_flatness([still]) == 0.0
    assert pooled_flatness([still, small]) == pytest.approx(0.9)
    assert pooled_flatness([small, large]) == pytest.approx(0.9 * 0.03**2 / (0.03**2 + 0.09**2))


def test_the_tally_pairs_frames_the_lag_apart_and_the_cue_needs_moving_pairs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (68, 2))
    base[36:42], base[42:48] = [20, 40], [70, 40]
    tally = ParallaxTally()
    assert tally.observe(0.0, base) is None  # nothing to pair with yet
    assert tally.observe(0.1, None) is None  # no landmarks: no reading
    assert tally.observe(0.2, base) is None  # only 0.2 s after the first
    assert tally.observe(0.35, base) is not None  # 0.35 s after the first
    assert tally.cue(0.2, 1, decides=False) is None  # nothing moved beyond noise
    far = ParallaxTally()
    far.observe(0.0, base)
    assert far.observe(0.9, base) is None  # the partner is too old (a gap)
    for i in range(6):
        t = 1.0 + 0.3 * i
        squeeze = np.array([[1 - 0.05 * i, 0.02 * i], [0.0, 1.0]])
        far.observe(t, base @ squeeze.T)
    cue = far.cue(0.2, 5, decides=True)
    assert cue is not None and cue.name == "parallax" and cue.decides
    assert cue.samples == far.moving_pairs() and cue.score > 0.9
    assert cue.flagged == (cue.samples >= 5)
    assert not far.cue(0.2, 99, decides=True).flagged  # type: ignore[union-attr]
