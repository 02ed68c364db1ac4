"""Train the passive real-vs-spoof CNN on the NUAA Photograph Imposter training split.

    .venv/bin/python -m services.liveness.training.spoof [--data ../shared/data] [--epochs 30]

Real webcam frames (ClientRaw) against frames of printed-photo attacks (ImposterRaw), 9 subjects.
Faces are found with dlib's HOG detector and cropped with `passive.spoof_crop` (the crop used at
run time); the crops are cached under .watchpost/cache/. Split by subject, so no person is on
both sides: subjects 0003 and 0007 are the held-out test set, 0005 and 0008 the validation set
(early stopping and the threshold), the other five train. The threshold is the validation
equal-error point. Writes services/liveness/models/spoof.keras, spoof.metrics.json (APCER,
BPCER, ACER in ISO/IEC 30107-3 terms on the test subjects) and spoof_curves.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.passive import FACE_CROP, spoof_crop
from services.liveness.training.common import (
    MODELS,
    equal_error_threshold,
    pad_metrics,
    plot_curves,
    seed_everything,
    shuffled_batches,
    write_metrics,
)
from watchpost.settings import PROJECT_ROOT, default_data_dir
from watchpost.vision.faces import detect_faces

ROOT = "liveness/nuaa_train"
TEST_SUBJECTS = {"0003", "0007"}
VALIDATION_SUBJECTS = {"0005", "0008"}


def load_crops(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (n, 64, 64, 3) uint8, labels 1=spoof, subject id) with a cache of the crops."""
    cache = PROJECT_ROOT / ".watchpost" / "cache" / "nuaa_train_crops.npz"
    if cache.exists():
        saved = np.load(cache)
        return saved["crops"], saved["labels"], saved["subjects"]
    crops, labels, subjects = [], [], []
    for listing, label in (("client_train_raw.txt", 0), ("imposter_train_raw.txt", 1)):
        for line in (data / ROOT / listing).read_text().split():
            path = data / ROOT / line.replace("\\", "/")
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
            boxes = detect_faces(rgb, upsample=0) or detect_faces(rgb, upsample=1)
            if not boxes:
                continue
            crops.append(spoof_crop(rgb, boxes[0]))
            labels.append(label)
            subjects.append(path.parent.name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cache, crops=np.stack(crops), labels=np.array(labels), subjects=np.array(subjects)
    )
    return np.stack(crops), np.array(labels), np.array(subjects)


def build_model():
    from tensorflow import keras
    from tensorflow.keras import layers

    return keras.Sequential(
        [
            keras.Input((FACE_CROP, FACE_CROP, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="spoof",
    )


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = batch.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    gain = rng.uniform(0.7, 1.3, (len(out), 1, 1, 1))
    bias = rng.uniform(-30, 30, (len(out), 1, 1, 1))
    return np.clip(out * gain + bias, 0, 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seed_everything(args.seed)
    from tensorflow import keras

    crops, labels, subjects = load_crops(args.data)
    part = np.where(
        np.isin(subjects, list(TEST_SUBJECTS)),
        "test",
        np.where(np.isin(subjects, list(VALIDATION_SUBJECTS)), "validation", "train"),
    )
    sets = {s: (crops[part == s], labels[part == s]) for s in ("train", "validation", "test")}
    print({s: (len(v[1]), int(v[1].sum())) for s, v in sets.items()}, "(samples, spoof)")
    rng = np.random.default_rng(args.seed)
    train_x, train_y = sets["train"]

    batches = shuffled_batches(
        train_x, train_y, size=32, rng=rng, transform=lambda batch: augment(batch, rng)
    )

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    started = time.time()
    history = model.fit(
        batches,
        steps_per_epoch=int(np.ceil(len(train_y) / 32)),
        epochs=args.epochs,
        validation_data=sets["validation"],
        callbacks=[
            keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True, monitor="val_loss")
        ],
        verbose=2,
    )
    seconds = time.time() - started
    val_scores = model.predict(sets["validation"][0], verbose=0).ravel()
    threshold = equal_error_threshold(sets["validation"][1], val_scores)
    test_scores = model.predict(sets["test"][0], verbose=0).ravel()
    metrics = {
        "data": f"{ROOT} (NUAA training split only)",
        "split": {
            "test_subjects": sorted(TEST_SUBJECTS),
            "validation_subjects": sorted(VALIDATION_SUBJECTS),
            "train_subjects": sorted(set(subjects) - TEST_SUBJECTS - VALIDATION_SUBJECTS),
        },
        "threshold": threshold,
        "threshold_rule": "equal error rate on the validation subjects",
        "validation": pad_metrics(sets["validation"][1], val_scores, threshold),
        "test": pad_metrics(sets["test"][1], test_scores, threshold),
        "test_at_0.5": pad_metrics(sets["test"][1], test_scores, 0.5),
        "positive_class": "spoof (printed-photo attack)",
        "faces_found": len(labels),
        "epochs_run": len(history.history["loss"]),
        "training_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
        "seed": args.seed,
    }
    MODELS.mkdir(exist_ok=True)
    model.save(MODELS / "spoof.keras")
    write_metrics(MODELS / "spoof.metrics.json", metrics)
    plot_curves(
        history.history, MODELS / "spoof_curves.png", "Real-vs-spoof CNN (NUAA train split)"
    )
    print(metrics)


if __name__ == "__main__":
    main()
