"""The passive attack model on real crops: the shipped model, a model that never saw a source,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.liveness.passive_model import PassiveModel
from tests.conftest import data_dir, require_data
from watchpost.images import cut_square
from watchpost.vision.faces import detect_faces

pytestmark = pytest.mark.data

HELD_OUT = "neonipun"  # screen replays of online videos, a source no other fold resembles


def nuaa_crop(relative: str) -> np.ndarray:
    path = require_data(f"liveness/nuaa_train/{relative}")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    boxes = detect_faces(rgb, upsample=0) or detect_faces(rgb, upsample=1)
    assert boxes, f"no face in {relative}"
    return cut_square(rgb, boxes[0])


def test_shipped_model_scores_real_crops():
    model = PassiveModel.load()
    crops = [
        nuaa_crop("ClientRaw/0001/0001_00_00_01_0.jpg"),
        nuaa_crop("ImposterRaw/0001/0001_00_00_01_0.jpg"),
    ]
    # Crops at camera resolution, not resized: the model resizes them itself.
    assert min(crops[0].shape[:2]) > 128
    scores = model.scores(crops)
    assert scores.shape == (2,)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert 0 < model.threshold < 1
    assert isinstance(model.decides, bool)
    assert model.card["worst_fold"] in model.card["loso"]
    # One crop alone scores as it does in a batch.
    assert model.scores(crops[:1])[0] == pytest.approx(scores[0])


def test_a_model_that_never_saw_a_source_ranks_its_replays_above_its_real_faces():
    """Trained in the test on the five other folds (no augmentation, to stay quick), then the
    mean score of the held-out source's replay presentations must exceed its real ones'."""
    pytest.importorskip("sklearn")
    from services.liveness import texture
    from services.liveness.training import loso
    from services.liveness.training.pad_data import FOLDS, load_samples
    from services.liveness.training.passive import Config, fit

    require_data("liveness/extra/manifest.csv")
    samples, _ = load_samples(data_dir())
    samples = [s for s in samples if s.item.fold in FOLDS]
    config = Config("test", augment="none")
    x = np.stack([texture.features(s.crop) for s in samples])
    y = np.array([s.item.label for s in samples])
    folds = np.array([s.item.fold for s in samples])
    held = folds == HELD_OUT
    model = fit(x[~held], y[~held], folds[~held], config)
    scores = model.scores([s.crop for s in samples if s.item.fold == HELD_OUT])
    groups = [s.item.presentation for s in samples if s.item.fold == HELD_OUT]
    means, labels, _ = loso.by_presentation(scores, y[held], groups)
    assert labels.sum() >= 5 and (labels == 0).sum() >= 5
    assert means[labels == 1].mean() > means[labels == 0].mean()


def test_bad_input():
    model = PassiveModel.load()
    # No crops: an empty result, not an error.
    assert model.scores([]).shape == (0,)
    # An empty array, a grey 2-D array, a 4x4 crop and a float crop: ValueError saying why.
    with pytest.raises(ValueError, match="too small"):
        model.scores([np.zeros((0, 0, 3), np.uint8)])
    with pytest.raises(ValueError, match="RGB"):
        model.scores([np.zeros((64, 64), np.uint8)])
    with pytest.raises(ValueError, match="too small"):
        model.scores([np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        model.scores([np.zeros((64, 64, 3), np.float32)])
    # A flat grey crop is a defined (finite) score, not an error.
    flat = model.scores([np.full((64, 64, 3), 128, np.uint8)])
    assert np.isfinite(flat).all()


def test_a_missing_or_foreign_model_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it"):
        PassiveModel.load(tmp_path / "absent.json")
    other = tmp_path / "other.json"
    other.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a passive model"):
        PassiveModel.load(other)
