"""The CNN experiment's input recipe (training/passive_cnn.py): per-image standardisation
removes a colour cast, augmented copies keep the input size, and sampling is equal per (fold,
class)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")  # passive_cnn imports the LR training code

from services.liveness.training.passive_cnn import (
    BASE,
    augment,
    sampling_weights,
    standardise,
)


def test_standardise_removes_a_colour_cast_and_exposure():
    rng = np.random.default_rng(0)
    face = rng.integers(40, 200, (1, 32, 32, 3)).astype(np.float32)
    cast = np.clip(face * np.array([1.0, 0.8, 0.6]) + 20, 0, 255)
    a, b = standardise(face.astype(np.uint8)), standardise(cast.astype(np.uint8))
    assert np.abs(a.mean(axis=(1, 2))).max() < 1e-4
    assert np.abs(b.mean(axis=(1, 2))).max() < 1e-4
    # A per-channel gain is not fully undone (the std is the image's), but the channel means are.
    assert a.shape == b.shape == (1, 32, 32, 3)


def test_augmented_copies_have_the_input_size_and_vary():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (BASE, BASE, 3), dtype=np.uint8)
    copies = [augment(base, 64, rng) for _ in range(5)]
    assert all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in copies)
    assert len({c.tobytes() for c in copies}) == 5


def test_each_fold_and_class_is_drawn_equally_often():
    units = np.array(["a"] * 90 + ["a"] * 10 + ["b"] * 5 + ["b"] * 5)
    labels = np.array([0] * 90 + [1] * 10 + [0] * 5 + [1] * 5)
    p = sampling_weights(units, labels)
    assert p.sum() == pytest.approx(1.0)
    for unit in "ab":
        for label in (0, 1):
            assert p[(units == unit) & (labels == label)].sum() == pytest.approx(0.25)
