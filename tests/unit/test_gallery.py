import numpy as np
import pytest

from services.recognition.gallery import Gallery


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
