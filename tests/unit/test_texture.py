"""The passive check's features on synthetic crops: sizes, group selection, bad input."""

import numpy as np
import pytest

from services.liveness import texture


@pytest.fixture
def crop():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (150, 130, 3), dtype=np.uint8)


def test_all_groups_and_their_lengths(crop):
    full = texture.features(crop)
    assert full.shape == (sum(texture.GROUPS.values()),)
    assert np.isfinite(full).all()
    # LBP histograms are shares of pixels: each channel's 10 bins sum to 1.
    start = texture.BANDS + 24 + 5
    lbp = full[start : start + 60].reshape(6, 10)
    assert lbp.sum(axis=1) == pytest.approx(np.ones(6), abs=1e-5)


def test_selected_groups_equal_the_masked_full_vector(crop):
    groups = ("spectrum", "quality", "lbp_scales")
    part = texture.features(crop, groups=groups)
    assert part == pytest.approx(texture.features(crop)[texture.group_mask(groups)])


def test_crop_size_is_normalised(crop):
    # The same picture at twice the resolution gives nearly the same spectrum shape: the
    # features see a 128-px crop whatever the camera's resolution.
    from PIL import Image

    smooth = np.asarray(Image.fromarray(crop).resize((40, 40)).resize((256, 256)))
    bigger = np.asarray(Image.fromarray(smooth).resize((512, 512), Image.Resampling.BICUBIC))
    a = texture.features(smooth, groups=["lbp"])
    b = texture.features(bigger, groups=["lbp"])
    assert np.abs(a - b).max() < 0.05


def test_bad_crops_are_refused():
    with pytest.raises(ValueError, match="RGB"):
        texture.features(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        texture.features(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        texture.features(np.zeros((64, 64, 3), np.float64))
    with pytest.raises(ValueError, match="unknown feature groups"):
        texture.features(np.zeros((64, 64, 3), np.uint8), groups=["moire"])


def test_context_compares_the_border_ring_with_the_centre(crop):
    """One texture all over (a screen's pixels on face and background alike) gives a context
    near zero; a textured face in front of a flat wall does not: its ring has fewer edges
    (lower Laplacian variance) and more flat-pixel LBP codes than its centre."""
    same = texture.features(crop, groups=["context"])
    assert same.shape == (texture.GROUPS["context"],)
    assert np.abs(same).max() < 0.15

    wall = np.full((150, 130, 3), 120, np.uint8)
    wall[38:112, 33:97] = crop[38:112, 33:97]  # the middle half textured, the border flat
    framed = texture.features(wall, groups=["context"])
    y_hist, laplacian = framed[:10], framed[20]
    assert laplacian < -3  # log variance: the ring is far smoother than the centre
    assert y_hist.max() > 0.3  # one code (flat neighbourhoods) dominates the ring
    assert np.isclose(y_hist.sum(), 0, atol=1e-6)  # two histograms of shares: differences sum to 0
