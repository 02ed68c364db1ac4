"""Train the eye-state CNN (open / closed) on the Closed Eyes In The Wild patches.

    .venv/bin/python -m services.liveness.training.eye_state [--data ../shared/data] \
        [--epochs 40] [--seeds 1] [--folds 5]

(on a shared machine, prefix TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1).

Reads `eyes/cew_dataset_B_Eye_Images.zip` (24x24 grey patches, left and right eyes of each source
face) without unpacking it and splits it by source photograph (every face of a group photo, and
both eyes of each, land in the same split: 80% train, 10% validation, 10% held-out test). Trains a
small CNN with batch normalisation (conv 32-32, pool, conv 64-64, pool, conv 128, pool, dense 128)
for a fixed number of epochs with AdamW on a cosine learning-rate schedule, label smoothing 0.1,
and mirror / small affine (+-2 px shift, +-10 degree rotation, +-8% scale) / gamma / brightness /
contrast augmentation. Nothing is chosen on the test split: there is no early stopping, the
validation split is only reported. With `--folds K` (default 5; 0 skips it) it then also reports a
K-fold cross-validated accuracy on train+validation, folds grouped by source photograph.

Writes to services/liveness/models/: `eye_state.keras`, its LiteRT export `eye_state.tflite` (what
the service runs; `eye_state_export.py`), `eye_state.metrics.json` (held-out and cross-validated
figures, and the export's agreement) and `eye_state_curves.png`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.eyes import standardise
from services.liveness.training.common import (
    MODELS,
    binary_metrics,
    plot_curves,
    seed_everything,
    shuffled_batches,
    split_of,
    write_metrics,
)
from services.liveness.training.eye_state_export import export, record
from watchpost.progress import bar, track
from watchpost.settings import default_data_dir

ARCHIVE = "eyes/cew_dataset_B_Eye_Images.zip"
PATCH = 24
BATCH = 64


def load_patches(archive: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(patches uint8 (n, 24, 24), labels 1=closed, source-image group of each)."""
    images, labels, groups = [], [], []
    with zipfile.ZipFile(archive) as bundle:
        names = [n for n in sorted(bundle.namelist()) if n.lower().endswith(".jpg")]
        for name in track(names, "eye images"):
            folder, file = name.split("/")[-2:]
            with Image.open(io.BytesIO(bundle.read(name))) as image:
                patch = image.convert("L").resize((PATCH, PATCH))
            images.append(np.asarray(patch))
            labels.append(1 if folder.lower().startswith("closed") else 0)
            groups.append(re.sub(r"_[LR]\.jpg$", "", file, flags=re.IGNORECASE))
    return np.stack(images), np.array(labels), groups


def build_model(width: int = 32, name: str = "eye_state"):
    """Conv-BN-ReLU blocks: 24 -> 12 -> 6 -> 3, then a small dense head (about 0.29M parameters)."""
    from tensorflow import keras
    from tensorflow.keras import layers

    def block(x, filters: int):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((PATCH, PATCH, 1))  # standardised patches (eyes.standardise)
    x = block(block(inputs, width), width)
    x = layers.MaxPooling2D()(x)
    x = block(block(x, 2 * width), 2 * width)
    x = layers.MaxPooling2D()(x)
    x = layers.MaxPooling2D()(block(x, 4 * width))
    x = layers.Dropout(0.4)(layers.Flatten()(x))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(128, use_bias=False)(x)))
    x = layers.Dropout(0.4)(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x), name=name)


def affine(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each (n, 24, 24, 1) patch rotated (+-10 degrees), scaled (+-8%) and shifted (+-2 px) about
    its centre, bilinear, edges repeated."""
    n, size = len(batch), batch.shape[1]
    angle = np.deg2rad(rng.uniform(-10, 10, n))
    scale = 1 + rng.uniform(-0.08, 0.08, n)
    shift = rng.uniform(-2, 2, (n, 2))
    centre = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) - centre
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    src_x = np.clip(cos * cols - sin * rows + centre + shift[:, 0, None, None], 0, size - 1)
    src_y = np.clip(sin * cols + cos * rows + centre + shift[:, 1, None, None], 0, size - 1)
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    x1, y1 = np.minimum(x0 + 1, size - 1), np.minimum(y0 + 1, size - 1)
    fx, fy = src_x - x0, src_y - y0
    i, image = np.arange(n)[:, None, None], batch[..., 0]
    out = (
        image[i, y0, x0] * (1 - fx) * (1 - fy)
        + image[i, y0, x1] * fx * (1 - fy)
        + image[i, y1, x0] * (1 - fx) * fy
        + image[i, y1, x1] * fx * fy
    )
    return out[..., None]


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror (a left eye is a mirrored right eye), a small random affine warp, and gamma,
    brightness and contrast jitter."""
    out = batch.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    out = affine(out, rng)
    gamma = np.exp(rng.uniform(-0.3, 0.3, (len(out), 1, 1, 1)))
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    gain = rng.uniform(0.8, 1.2, (len(out), 1, 1, 1))
    bias = rng.uniform(-20, 20, (len(out), 1, 1, 1))
    return np.clip(out * gain + bias, 0, 255)


def mirrored_scores(model, x: np.ndarray) -> np.ndarray:
    """P(closed) averaged over the patch and its mirror (as `EyeStateClassifier` does)."""
    both = standardise(np.concatenate([x, x[:, :, ::-1]]))
    scores = model.predict(both, batch_size=512, verbose=0).ravel()
    return (scores[: len(x)] + scores[len(x) :]) / 2


def train_member(train: tuple, validation: tuple | None, *, seed: int, epochs: int, progress=None):
    """One CNN trained for a fixed number of epochs (the validation split, if any, is only
    watched, never used to stop or to choose); returns (model, history). `progress`: a
    (rich Progress, task) advanced once per epoch."""
    from tensorflow import keras

    class EpochBar(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar, task = progress
            loss = (logs or {}).get("loss")
            described = f"seed {seed} epoch {epoch + 1}/{epochs}"
            if loss is not None:
                described += f" loss {loss:.3f}"
            bar.update(task, advance=1, description=described)

    seed_everything(seed)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    train_x, train_y = train
    steps = int(np.ceil(len(train_y) / BATCH))
    batches = shuffled_batches(
        train_x, train_y, size=BATCH, rng=rng, transform=lambda b: standardise(augment(b, rng))
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, (epochs - 2) * steps, alpha=0.01, warmup_target=2e-3, warmup_steps=2 * steps
    )
    model = build_model(name=f"eye_state_seed{seed}")
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-3),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )
    history = model.fit(
        batches,
        steps_per_epoch=steps,
        epochs=epochs,
        validation_data=(standardise(validation[0]), validation[1]) if validation else None,
        verbose=2,
        callbacks=[EpochBar()] if progress is not None else [],
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


def source_photo(group: str) -> str:
    """CEW closed-eye faces are named `<photo>_face_<n>`: faces of one photo share a CV fold."""
    return re.sub(r"_face_\d+$", "", group)


def fold_of(group: str, folds: int) -> int:
    return int(hashlib.sha1(f"cv:{source_photo(group)}".encode()).hexdigest()[:8], 16) % folds


def cross_validate(x, labels, groups, *, folds: int, seed: int, epochs: int, progress=None) -> dict:
    """K-fold accuracy on train+validation (never the test split), folds by source photograph."""
    fold = np.array([fold_of(g, folds) for g in groups])
    per_fold, all_labels, all_scores = [], [], []
    for k in range(folds):
        held = fold == k
        model, _ = train_member(
            (x[~held], labels[~held]), None, seed=seed, epochs=epochs, progress=progress
        )
        scores = mirrored_scores(model, x[held])
        per_fold.append(binary_metrics(labels[held], scores)["accuracy"])
        all_labels.append(labels[held])
        all_scores.append(scores)
        print(f"fold {k}: {int(held.sum())} patches, accuracy {per_fold[-1]:.4f}", flush=True)
    pooled = binary_metrics(np.concatenate(all_labels), np.concatenate(all_scores))
    return {
        "folds": folds,
        "grouping": "source photograph (all faces and both eyes of one photo in one fold)",
        "data": "train + validation splits (the test split is never used)",
        "fold_accuracy": per_fold,
        "mean_accuracy": float(np.mean(per_fold)),
        "std_accuracy": float(np.std(per_fold, ddof=1)),
        "pooled": pooled,
        "seed": seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1],
        help="one member per seed; with several, the saved model is their mean",
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="grouped cross-validation folds (0: skip)"
    )
    args = parser.parse_args()
    patches, labels, groups = load_patches(args.data / ARCHIVE)
    # By source photograph: every face of a CEW group photo, and both eyes of each, on one side.
    split = np.array([split_of(source_photo(g), test=0.1, validation=0.1) for g in groups])
    x = patches[..., None]
    sets = {s: (x[split == s], labels[split == s]) for s in ("train", "validation", "test")}
    print({s: (len(v[1]), int(v[1].sum())) for s, v in sets.items()}, "(samples, closed)")
    # One bar over every epoch of the run: the members, then the cross-validation folds.
    progress = bar()
    progress.start()
    task = progress.add_task("training", total=args.epochs * (len(args.seeds) + max(0, args.folds)))
    started = time.time()
    trained = [
        train_member(
            sets["train"],
            sets["validation"],
            seed=seed,
            epochs=args.epochs,
            progress=(progress, task),
        )
        for seed in args.seeds
    ]
    seconds = time.time() - started
    model = average_of([m for m, _ in trained])
    test_x, test_y = sets["test"]
    val_x, val_y = sets["validation"]
    members = [
        {
            "seed": seed,
            "epochs_run": len(history["loss"]),
            "validation_accuracy": binary_metrics(val_y, mirrored_scores(m, val_x))["accuracy"],
            "test_accuracy": binary_metrics(test_y, mirrored_scores(m, test_x))["accuracy"],
        }
        for seed, (m, history) in zip(args.seeds, trained, strict=True)
    ]
    metrics = {
        "data": ARCHIVE,
        "split": "by source photograph (every face of a photo, both eyes of each, together), "
        "80/10/10 train/validation/test by sha1 bucket of the photo name",
        "training": f"{args.epochs} epochs, AdamW (weight decay 1e-3) with cosine schedule "
        "(peak 2e-3), label smoothing 0.1, mirror + affine + gamma/brightness/contrast "
        "augmentation; no early stopping (validation is only reported)",
        "train_samples": len(sets["train"][1]),
        "validation_samples": len(val_y),
        "test": binary_metrics(test_y, mirrored_scores(model, test_x)),
        "validation": binary_metrics(val_y, mirrored_scores(model, val_x)),
        "inference": "mean P(closed) of the ensemble over the patch and its mirror image",
        "positive_class": "closed",
        "members": members,
        "training_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }
    MODELS.mkdir(exist_ok=True)
    model.save(MODELS / "eye_state.keras")
    # What the service runs: the LiteRT export, checked against the Keras model on the test split.
    record(metrics, test_x[..., 0], test_y, export())
    write_metrics(MODELS / "eye_state.metrics.json", metrics)
    plot_curves(trained[0][1], MODELS / "eye_state_curves.png", "Eye-state CNN (CEW), first member")
    print(metrics)
    if args.folds:
        pool = split != "test"
        metrics["cross_validation"] = cross_validate(
            x[pool],
            labels[pool],
            [g for g, p in zip(groups, pool, strict=True) if p],
            folds=args.folds,
            seed=args.seeds[0],
            epochs=args.epochs,
            progress=(progress, task),
        )
        write_metrics(MODELS / "eye_state.metrics.json", metrics)
        print(metrics["cross_validation"])
    progress.stop()


if __name__ == "__main__":
    main()
