"""Export the eye-state CNN from Keras to LiteRT, the form the liveness service runs.

    .venv/bin/python -m services.liveness.training.eye_state_export [--data ../shared/data]

`eye_state.py` calls `export` after every training run, so `eye_state.keras` and
`eye_state.tflite` never disagree; run this module alone to re-export a committed model.

The liveness service reads both eyes of every face on every frame. Run by TensorFlow, one face's
four patches (two eyes and their mirror images) cost 4.0 ms a call on one thread, and TensorFlow
is 600 MB of the service's memory; LiteRT, which already runs BlazeFace, runs the same graph in
1.6 ms. The conversion keeps float32 weights (no quantisation), and is then checked on CEW's
held-out test split (the one `eye_state.py` never trains or chooses on): the largest difference
in P(closed) between the two and both accuracies go into `eye_state.metrics.json` as `litert`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from services.liveness.eyes import EyeStateClassifier, standardise
from services.liveness.training.common import MODELS, binary_metrics, split_of, write_metrics
from watchpost.settings import default_data_dir

KERAS = MODELS / "eye_state.keras"
LITERT = MODELS / "eye_state.tflite"
CARD = MODELS / "eye_state.metrics.json"


def export(keras_path: Path = KERAS, out: Path = LITERT) -> int:
    """Write the Keras model as a float32 LiteRT flatbuffer with a free batch size; its size."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    model = tf.keras.models.load_model(keras_path, compile=False)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    out.write_bytes(flatbuffer)
    return len(flatbuffer)


def agreement(patches: np.ndarray, labels: np.ndarray, keras_path: Path = KERAS) -> dict:
    """The Keras model against the service's classifier (the LiteRT export) on these patches:
    the largest difference in P(closed), and each one's metrics at 0.5."""
    import tensorflow as tf

    model = tf.keras.models.load_model(keras_path, compile=False)
    both = standardise(np.concatenate([patches, patches[:, :, ::-1]]))[..., None]
    keras_both = model.predict(both, batch_size=512, verbose=0).ravel()
    keras_scores = (keras_both[: len(patches)] + keras_both[len(patches) :]) / 2
    litert_scores = EyeStateClassifier().scores(patches)
    return {
        "samples": len(labels),
        "max_abs_difference": float(np.abs(keras_scores - litert_scores).max()),
        "keras": binary_metrics(labels, keras_scores),
        "litert": binary_metrics(labels, litert_scores),
    }


def held_out(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """CEW's test split exactly as `eye_state.py` draws it (by source photograph)."""
    from services.liveness.training.eye_state import ARCHIVE, load_patches, source_photo

    patches, labels, groups = load_patches(data / ARCHIVE)
    test = np.array([split_of(source_photo(g), test=0.1, validation=0.1) == "test" for g in groups])
    return patches[test], labels[test]


def record(metrics: dict, patches: np.ndarray, labels: np.ndarray, size: int) -> dict:
    """`metrics` with the export's check on the held-out split (`patches`, `labels`)."""
    metrics["litert"] = {
        "file": LITERT.name,
        "bytes": size,
        "conversion": "tf.lite.TFLiteConverter.from_keras_model, float32, no quantisation",
        "checked_on": "the held-out test split",
        **agreement(patches, labels),
    }
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args()
    import json

    size = export()
    metrics = record(json.loads(CARD.read_text()), *held_out(args.data), size)
    write_metrics(CARD, metrics)
    print(metrics["litert"])


if __name__ == "__main__":
    main()
