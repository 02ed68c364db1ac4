"""The per-camera passive threshold fitted on real presentations' scores, by hand."""

import numpy as np
import pytest

from services.liveness.calibration import fit_threshold


def test_the_threshold_is_the_quantile_of_the_real_scores_by_hand():
    # 21 real scores 0.00, 0.05, ..., 1.00: the 0.95 quantile is the 20th of 21 (index 19, 0.95).
    scores = [i / 20 for i in range(21)]
    assert fit_threshold(scores, 0.05) == pytest.approx(0.95)
    # 0.9 quantile: index 18 -> 0.90.
    assert fit_threshold(scores, 0.10) == pytest.approx(0.90)
    # Between two order statistics it interpolates: 5 scores, 0.95 quantile is at index 3.8.
    assert fit_threshold([0.1, 0.2, 0.3, 0.4, 0.5], 0.05) == pytest.approx(0.48)
    # The order the scores come in does not matter.
    assert fit_threshold(scores[::-1], 0.05) == fit_threshold(scores, 0.05)


def test_about_the_target_share_of_the_real_scores_reach_it():
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, 400).tolist()
    threshold = fit_threshold(scores, 0.05)
    assert np.mean(np.array(scores) >= threshold) == pytest.approx(0.05, abs=0.005)


def test_a_camera_whose_real_people_score_high_gets_a_higher_threshold():
    low = fit_threshold([0.1, 0.2, 0.15, 0.3, 0.25] * 4, 0.05)
    high = fit_threshold([0.5, 0.6, 0.55, 0.7, 0.65] * 4, 0.05)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("scores", "target", "message"),
    [
        ([], 0.05, "no real presentation"),
        ([0.2, 0.3], 0.0, "between 0 and 1"),
        ([0.2, 0.3], 1.0, "between 0 and 1"),
        ([0.2, float("nan")], 0.05, "probabilities"),
        ([0.2, 1.5], 0.05, "probabilities"),
    ],
)
def test_bad_input_is_refused_with_the_reason(scores, target, message):
    with pytest.raises(ValueError, match=message):
        fit_threshold(scores, target)
