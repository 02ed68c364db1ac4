import itertools
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from watchpost.calibration import CalibrationError, calibrate, gallery_scores, svg


def at(*coordinates: float) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[: len(coordinates)] = coordinates
    return v


# Ann: two photos 0.3 apart; Ben: two photos 0.4 apart, 1 from Ann's first.
ROWS = np.stack([at(0, 0, 0), at(0.3, 0, 0), at(0, 1, 0), at(0, 1, 0.4)])
IDS = [1, 1, 2, 2]


def test_genuine_and_impostor_scores_leave_the_photo_out():
    scores = gallery_scores(ROWS, IDS, k=1)
    assert sorted(scores.genuine) == pytest.approx([0.3, 0.3, 0.4, 0.4])
    assert len(scores.impostor) == 4 and scores.impostor.min() == pytest.approx(1.0)
    assert (scores.identities, scores.samples) == (2, 4)
    # k=2 scores an identity by the mean of its two nearest photos.
    k2 = gallery_scores(ROWS, IDS, k=2)
    assert k2.impostor.min() == pytest.approx((1.0 + np.hypot(1, 0.3)) / 2)  # Ben 1 vs Ann


def test_scoring_reports_each_photo_to_its_progress():
    seen: list[int] = []

    def progress(rows):
        for row in rows:
            seen.append(row)
            yield row

    assert gallery_scores(ROWS, IDS, k=1, progress=progress).samples == 4
    assert seen == [0, 1, 2, 3]


def test_the_curve_and_the_suggested_threshold():
    scores = gallery_scores(ROWS, IDS, k=1)
    result = calibrate(scores, target_far=1e-4, current_threshold=0.35, gallery_identities=2)
    assert result["at_current"]["frr"] == pytest.approx(0.5)  # Ben's photos are 0.4 apart
    assert result["at_current"]["far_pair"] == 0.0
    suggested = result["suggested_threshold"]
    assert suggested is not None and 0.4 <= suggested < 1.0
    assert result["at_suggested"]["frr"] == 0.0
    assert result["at_suggested"]["far_identification_fitted"] <= 1e-4
    # A bigger gallery has more people to mistake a stranger for: a stricter suggestion.
    big = calibrate(scores, target_far=1e-4, current_threshold=0.35, gallery_identities=10_000)
    assert big["suggested_threshold"] is None or big["suggested_threshold"] <= suggested
    curve = result["curve"]
    assert all(a["far_pair"] <= b["far_pair"] for a, b in itertools.pairwise(curve))
    assert all(a["frr"] >= b["frr"] for a, b in itertools.pairwise(curve))


def test_the_plot_is_svg_with_both_thresholds_marked():
    scores = gallery_scores(ROWS, IDS, k=1)
    result = calibrate(scores, target_far=1e-4, current_threshold=0.35, gallery_identities=2)
    root = ET.fromstring(svg(result))
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "current 0.350" in text and f"suggested {result['suggested_threshold']:.3f}" in text
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 3


@pytest.mark.parametrize(
    ("rows", "ids", "reason"),
    [
        (ROWS[:2], [1, 1], "impostor pairs need at least 2 people"),
        (ROWS[[0, 2]], [1, 2], "no person has two photos enrolled"),
    ],
)
def test_a_gallery_too_small_to_calibrate_says_why(rows, ids, reason):
    with pytest.raises(CalibrationError, match=reason):
        gallery_scores(rows, ids, k=1)


def test_a_target_rate_outside_zero_to_one_is_refused():
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        calibrate(
            gallery_scores(ROWS, IDS, k=1),
            target_far=0,
            current_threshold=0.6,
            gallery_identities=2,
        )
