"""What the training scripts share: seeding, group splits, metrics, curves."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent.parent / "models"


def seed_everything(seed: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    random.seed(seed)
    np.random.seed(seed)
    import tensorflow as tf

    tf.random.set_seed(seed)
    # Two threads unless TensorFlow's own variables ask for fewer (e.g. on a shared machine).
    # The pools are the process's: where TensorFlow already runs (a caller that loaded a model
    # first, a test process), they are fixed and stay as they are.
    try:
        tf.config.threading.set_inter_op_parallelism_threads(
            int(os.environ.get("TF_NUM_INTEROP_THREADS", 2))
        )
        tf.config.threading.set_intra_op_parallelism_threads(
            int(os.environ.get("TF_NUM_INTRAOP_THREADS", 2))
        )
    except RuntimeError:
        pass


def split_of(group: str, *, test: float, validation: float) -> str:
    """A stable split by group (source image, subject): the same group always lands together."""
    bucket = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test:
        return "test"
    if bucket < test + validation:
        return "validation"
    return "train"


def shuffled_batches(
    x: np.ndarray, y: np.ndarray, *, size: int, rng: np.random.Generator, transform
):
    """Endless (transform(x batch), y batch) pairs over a fresh permutation each epoch."""
    while True:
        order = rng.permutation(len(y))
        for start in range(0, len(order), size):
            index = order[start : start + size]
            yield transform(x[index]), y[index]


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, and precision/recall of the positive class (label 1)."""
    predicted = scores >= threshold
    positive = labels == 1
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    return {
        "accuracy": float(np.mean(predicted == positive)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "threshold": threshold,
        "samples": len(labels),
    }


def plot_curves(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, axis in (("loss", loss), ("accuracy", accuracy)):
        axis.plot(history[key], label="train")
        axis.plot(history[f"val_{key}"], label="validation")
        axis.set(xlabel="epoch", ylabel=key)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
