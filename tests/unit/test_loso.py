"""The PAD error rates on small tables computed by hand."""

import numpy as np
import pytest

from services.liveness.training.loso import (
    auc,
    bpcer_at_apcer,
    by_presentation,
    eer_threshold,
    error_rates,
    minimax_threshold,
    summary,
)

# 4 attacks (label 1) and 4 bona fide (label 0).
SCORES = np.array([0.9, 0.8, 0.4, 0.3, 0.6, 0.2, 0.1, 0.05])
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_error_rates_by_hand():
    # t = 0.5: attacks below 0.5 are 0.4 and 0.3 -> APCER 2/4; bona fide >= 0.5 is 0.6 -> 1/4.
    rates = error_rates(SCORES, LABELS, 0.5)
    assert rates.apcer == 0.5
    assert rates.bpcer == 0.25
    assert rates.acer == 0.375
    assert (rates.attacks, rates.bona_fide) == (4, 4)
    # A score equal to the threshold is an attack decision.
    assert error_rates(SCORES, LABELS, 0.6).bpcer == 0.25
    assert error_rates(SCORES, LABELS, 0.61).bpcer == 0.0


def test_auc_by_hand():
    # Pairs (attack > bona fide) out of 16: 0.9 and 0.8 beat all 4 (8); 0.4 and 0.3 beat 3 (6).
    assert auc(SCORES, LABELS) == 14 / 16
    # A tie counts half.
    assert auc([0.5, 0.5], [1, 0]) == 0.5
    assert auc([1.0, 0.0], [1, 0]) == 1.0


def test_bpcer_at_apcer_by_hand():
    # APCER <= 5% of 4 attacks means no attack missed: t <= 0.3, and then 0.6 is refused -> 1/4.
    assert bpcer_at_apcer(SCORES, LABELS, 0.05) == 0.25
    # APCER <= 25% allows missing 0.3: t = 0.4 still refuses 0.6 -> 1/4. APCER 50%: t = 0.61 -> 0.
    assert bpcer_at_apcer(SCORES, LABELS, 0.25) == 0.25
    assert bpcer_at_apcer(SCORES, LABELS, 0.5) == 0.0


def test_eer_threshold_by_hand():
    # Thresholds 0.3 (APCER 0, BPCER 1/4) and 0.4 (1/4, 1/4): 0.4 is the equal-error point;
    # it is returned as the midpoint to the next lower score, 0.3 -> 0.35.
    t = eer_threshold(SCORES, LABELS)
    assert t == pytest.approx(0.35)
    rates = error_rates(SCORES, LABELS, t)
    assert rates.apcer == rates.bpcer == 0.25


def test_perfect_separation_threshold():
    t = eer_threshold([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert 0.2 < t <= 0.8
    assert error_rates([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], t).acer == 0.0


def test_by_presentation_means_frames():
    scores = [0.2, 0.4, 0.9, 0.7, 0.1]
    labels = [0, 0, 1, 1, 0]
    groups = ["a", "a", "b", "b", "c"]
    means, plabels, names = by_presentation(scores, labels, groups)
    assert list(names) == ["a", "b", "c"]
    assert means == pytest.approx([0.3, 0.8, 0.1])
    assert list(plabels) == [0, 1, 0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="mixes"):
        by_presentation([0.1, 0.2], [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="labels"):
        error_rates([0.1], [2], 0.5)
    with pytest.raises(ValueError, match="1-D"):
        auc([0.1, 0.2], [1])


def test_summary_has_every_figure():
    figures = summary(SCORES, LABELS, 0.5)
    assert figures["acer"] == 0.375
    assert figures["auc"] == 14 / 16
    assert figures["bpcer_at_apcer5"] == 0.25


def test_minimax_threshold_by_hand():
    # Fold a: attack 0.9, bona fide 0.5. Fold b: attack 0.7, bona fide 0.2. Candidates are the
    # midpoints of 0.2, 0.5, 0.7, 0.9 (0.35, 0.6, 0.8) and just outside them.
    # 0.35: a refuses 0.5 (ACER 0.5). 0.8: b misses 0.7 (0.5). 0.6: no error in either fold.
    scores = [0.9, 0.5, 0.7, 0.2]
    labels = [1, 0, 1, 0]
    folds = ["a", "a", "b", "b"]
    t = minimax_threshold(scores, labels, folds)
    assert t == pytest.approx(0.6)
    assert error_rates(scores, labels, t).acer == 0.0


def test_minimax_threshold_counts_each_fold_once():
    # Fold big: 10 bona fide at 0.6, 10 attacks at 0.8. Fold small: bona fide 0.1, attack 0.5.
    # Candidates 0.3, 0.55, 0.7 (and outside). 0.3: big refuses all its bona fide (ACER 0.5),
    # small none (0): worst 0.5, mean 0.25. 0.55: both 0.5. 0.7: big 0, small misses its attack
    # (0.5): worst 0.5, mean 0.25. A tie: the lower threshold wins.
    scores = [0.6] * 10 + [0.8] * 10 + [0.1, 0.5]
    labels = [0] * 10 + [1] * 10 + [0, 1]
    folds = ["big"] * 20 + ["small"] * 2
    assert minimax_threshold(scores, labels, folds) == pytest.approx(0.3)
    # Pooled, the big fold's 20 presentations outvote small's 2: the equal-error point is 0.7.
    assert eer_threshold(scores, labels) == pytest.approx(0.7)
