import numpy as np
import pytest

from services.recognition.gallery import Gallery, identity_distance


def unit(index: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[index] = scale
    return v


def test_identify_nearest_within_threshold_with_runner_up():
    gallery = Gallery(np.stack([unit(0), unit(0, 0.9), unit(1)]), [1, 1, 2], ["Ann", "Ann", "Ben"])
    match = gallery.identify(unit(0, 0.95), threshold=0.6)
    assert (match.identity_id, match.display_name) == (1, "Ann")
    assert match.distance == pytest.approx(0.05, abs=1e-6)
    assert match.runner_up_distance == pytest.approx(np.hypot(0.95, 1.0), abs=1e-6)


def test_beyond_threshold_is_unknown_but_keeps_the_distance():
    gallery = Gallery(np.stack([unit(0)]), [1], ["Ann"])
    match = gallery.identify(unit(5), threshold=0.6)
    assert match.identity_id is None and match.distance == pytest.approx(np.sqrt(2))
    assert match.runner_up_distance is None


def test_empty_gallery_knows_nobody():
    assert Gallery.empty().identify(unit(0), threshold=0.6).identity_id is None


def test_rows_must_line_up():
    with pytest.raises(ValueError):
        Gallery(np.zeros((2, 128)), [1], ["Ann"])


def test_identities_are_scored_by_the_mean_of_their_k_nearest_samples():
    # Ann has one sample right on the probe and two far ones; Ben two samples fairly near.
    rows = np.stack([unit(0), unit(1), unit(2), unit(0, 0.7), unit(0, 0.65)])
    gallery = Gallery(rows, [1, 1, 1, 2, 2], ["Ann"] * 3 + ["Ben"] * 2, k=2)
    match = gallery.identify(unit(0), threshold=0.6)
    assert match.identity_id == 2  # two samples at 0.30 and 0.35 beat one at 0 and one at 1.41
    assert match.distance == pytest.approx(0.325, abs=1e-6)
    assert match.runner_up_distance == pytest.approx(np.sqrt(2) / 2, abs=1e-6)
    # Per sample (k=1), Ann's lucky photo wins.
    assert (
        Gallery(rows, [1, 1, 1, 2, 2], ["Ann"] * 3 + ["Ben"] * 2)
        .identify(unit(0), threshold=0.6)
        .identity_id
        == 1
    )
    # An identity with fewer than k samples is scored on the ones it has.
    assert identity_distance(np.stack([unit(0, 0.9)]), unit(0), k=3) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        identity_distance(np.zeros((0, 128)), unit(0), k=3)


def test_k_mean_search_matches_brute_force_on_a_large_gallery():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3000, 128)).astype(np.float32) / np.sqrt(128) * 0.5
    ids = list(rng.integers(0, 400, 3000))
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3)
    for probe in rows[:30] + 0.01:
        expected = {i: identity_distance(rows[np.asarray(ids) == i], probe, k=3) for i in set(ids)}
        ranked = sorted(expected, key=expected.__getitem__)
        match = gallery.identify(probe, threshold=10.0)
        assert match.identity_id == ranked[0]
        assert match.distance == pytest.approx(expected[ranked[0]], abs=1e-5)
        assert match.runner_up_distance == pytest.approx(expected[ranked[1]], abs=1e-5)
