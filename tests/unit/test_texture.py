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
