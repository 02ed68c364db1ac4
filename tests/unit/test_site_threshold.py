"""The per-camera passive threshold fitted on real presentations' scores, by hand."""

import numpy as np
import pytest

from services.liveness.calibration import fit_threshold, needed_presentations


def test_the_threshold_sits_just_above_the_right_order_statistic_by_hand():
    # 39 real scores 0.01 ... 0.39, target 5%: k = ceil(40 * 0.95) = 38, so just above 0.38;
    # only 0.39 (1 of 39) reaches it.
    scores = [i / 100 for i in range(1, 40)]
    threshold = fit_threshold(scores, 0.05)
    assert 0.38 < threshold < 0.3801
    assert sum(s >= threshold for s in scores) == 1
    # 19 scores at 5%: k = ceil(20 * 0.95) = 19, just above the highest.
    assert 0.19 < fit_threshold(scores[:19], 0.05) < 0.1901
    # 19 scores at 10%: k = ceil(20 * 0.9) = 18, just above the 18th (0.18).
    assert 0.18 < fit_threshold(scores[:19], 0.10) < 0.1801
    # The order the scores come in does not matter.
    assert fit_threshold(scores[::-1], 0.05) == threshold


def test_the_fewest_presentations_that_can_bound_the_target():
    assert needed_presentations(0.05) == 19
    assert needed_presentations(0.10) == 9
    assert needed_presentations(0.20) == 4
    with pytest.raises(ValueError, match="at least 19"):
        fit_threshold([0.1] * 18, 0.05)


def test_a_new_real_person_reaches_it_at_most_at_the_target_rate():
    """From 20 real scores at 5%: a new real presentation of the same camera reaches the
    threshold with chance 1/21 (4.8%). The plain 95% quantile would let about 9% through."""
    rng = np.random.default_rng(0)
    fitted, plain = [], []
    for _ in range(2000):
        calibration = rng.beta(2, 5, 20)
        new = rng.beta(2, 5, 50)
        fitted.append(np.mean(new >= fit_threshold(calibration.tolist(), 0.05)))
        plain.append(np.mean(new >= np.quantile(calibration, 0.95)))
    assert 0.035 < np.mean(fitted) <= 0.052
    assert np.mean(plain) > 0.08


def test_a_camera_whose_real_people_score_high_gets_a_higher_threshold():
    low = fit_threshold([0.1, 0.2, 0.15, 0.3, 0.25] * 4, 0.05)
    high = fit_threshold([0.5, 0.6, 0.55, 0.7, 0.65] * 4, 0.05)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.7)
    assert low > 0.3 and high > 0.7  # just above: the highest real score is not refused


@pytest.mark.parametrize(
    ("scores", "target", "message"),
    [
        ([], 0.05, "no real presentation"),
        ([0.2] * 30, 0.0, "between 0 and 1"),
        ([0.2] * 30, 1.0, "between 0 and 1"),
        ([0.2] * 29 + [float("nan")], 0.05, "probabilities"),
        ([0.2] * 29 + [1.5], 0.05, "probabilities"),
    ],
)
def test_bad_input_is_refused_with_the_reason(scores, target, message):
    with pytest.raises(ValueError, match=message):
        fit_threshold(scores, target)
