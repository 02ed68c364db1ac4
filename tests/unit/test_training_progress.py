"""Training scripts show progress: the eye-state CNN advances its bar once per epoch (a tiny run
on random patches; nothing is saved)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from rich.progress import Progress


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")  # Keras, on generators
def test_eye_state_training_advances_its_bar_every_epoch():
    from services.liveness.training.eye_state import PATCH, train_member

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (96, PATCH, PATCH, 1), dtype=np.uint8)
    y = rng.integers(0, 2, 96)
    out = io.StringIO()
    with Progress(console=Console(file=out, width=100)) as progress:
        task = progress.add_task("training", total=3)
        model, history = train_member((x, y), None, seed=1, epochs=3, progress=(progress, task))
        assert progress.tasks[0].completed == 3
        assert progress.tasks[0].description.startswith("seed 1 epoch 3/3 loss ")
    assert len(history["loss"]) == 3 and model is not None
