"""Train the eye-state CNN (open / closed) on the Closed Eyes In The Wild patches.

    .venv/bin/python -m services.liveness.training.eye_state [--data ../shared/data] [--epochs 60]

Reads `eyes/cew_dataset_B_Eye_Images.zip` (24x24 grey patches, left and right eyes of each source
face) without unpacking it, splits by source image (both eyes of one face always land in the
same split: 80% train, 10% validation for early stopping, 10% held-out test), trains a small
LeNet-style CNN with flips and brightness jitter, and writes to services/liveness/models/:
`eye_state.keras`, `eye_state.metrics.json` (held-out figures) and `eye_state_curves.png`.
"""

from __future__ import annotations

import argparse
import io
import re
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.passive import standardise
from services.liveness.training.common import (
    MODELS,
    binary_metrics,
    plot_curves,
    seed_everything,
    shuffled_batches,
    split_of,
    write_metrics,
)
from watchpost.settings import default_data_dir

ARCHIVE = "eyes/cew_dataset_B_Eye_Images.zip"
PATCH = 24


def load_patches(archive: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(patches uint8 (n, 24, 24), labels 1=closed, source-image group of each)."""
    images, labels, groups = [], [], []
    with zipfile.ZipFile(archive) as bundle:
        for name in sorted(bundle.namelist()):
            if not name.lower().endswith(".jpg"):
                continue
            folder, file = name.split("/")[-2:]
            with Image.open(io.BytesIO(bundle.read(name))) as image:
                patch = image.convert("L").resize((PATCH, PATCH))
            images.append(np.asarray(patch))
            labels.append(1 if folder.lower().startswith("closed") else 0)
            groups.append(re.sub(r"_[LR]\.jpg$", "", file, flags=re.IGNORECASE))
    return np.stack(images), np.array(labels), groups


def build_model(width: int = 32, name: str = "eye_state"):
    from tensorflow import keras
    from tensorflow.keras import layers

    return keras.Sequential(
        [
            keras.Input((PATCH, PATCH, 1)),  # standardised patches (passive.standardise)
            layers.Conv2D(width, 3, padding="same", activation="relu"),
            layers.Conv2D(width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ],
        name=name,
    )


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror (a left eye is a mirrored right eye), mild brightness/contrast jitter, and an
    occasional 1-px shift."""
    out = batch.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    gain = rng.uniform(0.85, 1.15, (len(out), 1, 1, 1))
    bias = rng.uniform(-15, 15, (len(out), 1, 1, 1))
    out = np.clip(out * gain + bias, 0, 255)
    if rng.random() < 0.5:
        out = np.roll(out, tuple(rng.integers(-1, 2, 2)), axis=(1, 2))
    return out


def mirrored_scores(model, x: np.ndarray) -> np.ndarray:
    """P(closed) averaged over the patch and its mirror (as `EyeStateClassifier` does)."""
    both = standardise(np.concatenate([x, x[:, :, ::-1]]))
    scores = model.predict(both, verbose=0).ravel()
    return (scores[: len(x)] + scores[len(x) :]) / 2


def train_member(sets: dict, *, seed: int, epochs: int):
    """One CNN, early-stopped on the validation split; returns (model, history)."""
    from tensorflow import keras

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    train_x, train_y = sets["train"]
    batches = shuffled_batches(
        train_x, train_y, size=64, rng=rng, transform=lambda batch: standardise(augment(batch, rng))
    )
    model = build_model(name=f"eye_state_seed{seed}")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(
        batches,
        steps_per_epoch=int(np.ceil(len(train_y) / 64)),
        epochs=epochs,
        validation_data=(standardise(sets["validation"][0]), sets["validation"][1]),
        callbacks=[
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=4, monitor="val_loss"),
            keras.callbacks.EarlyStopping(
                patience=12, restore_best_weights=True, monitor="val_loss"
            ),
        ],
        verbose=2,
    )
    return model, history.history


def average_of(members: list):
    """One Keras model whose output is the mean of the members' (saved and loaded as one)."""
    from tensorflow import keras
    from tensorflow.keras import layers

    if len(members) == 1:
        return members[0]
    inputs = keras.Input((PATCH, PATCH, 1))
    outputs = layers.Average()([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="eye_state")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1],
        help="one member per seed; with several, the saved model is their mean (an ensemble of "
        "three measured no better on validation: see the model card)",
    )
    args = parser.parse_args()
    patches, labels, groups = load_patches(args.data / ARCHIVE)
    split = np.array([split_of(g, test=0.1, validation=0.1) for g in groups])
    x = patches[..., None]
    sets = {s: (x[split == s], labels[split == s]) for s in ("train", "validation", "test")}
    print({s: (len(v[1]), int(v[1].sum())) for s, v in sets.items()}, "(samples, closed)")
    started = time.time()
    trained = [train_member(sets, seed=seed, epochs=args.epochs) for seed in args.seeds]
    seconds = time.time() - started
    model = average_of([m for m, _ in trained])
    test_x, test_y = sets["test"]
    members = [
        {
            "seed": seed,
            "epochs_run": len(history["loss"]),
            "validation_accuracy": binary_metrics(
                sets["validation"][1], mirrored_scores(m, sets["validation"][0])
            )["accuracy"],
            "test_accuracy": binary_metrics(test_y, mirrored_scores(m, test_x))["accuracy"],
        }
        for seed, (m, history) in zip(args.seeds, trained, strict=True)
    ]
    metrics = {
        "data": ARCHIVE,
        "split": "by source image (both eyes together), 80/10/10 train/validation/test "
        "by sha1 bucket of the source name",
        "train_samples": len(sets["train"][1]),
        "validation_samples": len(sets["validation"][1]),
        "test": binary_metrics(test_y, mirrored_scores(model, test_x)),
        "validation": binary_metrics(
            sets["validation"][1], mirrored_scores(model, sets["validation"][0])
        ),
        "inference": "mean P(closed) of the ensemble over the patch and its mirror image",
        "positive_class": "closed",
        "members": members,
        "training_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }
    MODELS.mkdir(exist_ok=True)
    model.save(MODELS / "eye_state.keras")
    write_metrics(MODELS / "eye_state.metrics.json", metrics)
    plot_curves(trained[0][1], MODELS / "eye_state_curves.png", "Eye-state CNN (CEW), first member")
    print(metrics)


if __name__ == "__main__":
    main()
