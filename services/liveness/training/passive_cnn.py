"""Experiment: a small CNN for the passive attack check, alone and fused with the LR model,
measured leave-one-source-out with a recipe fixed before any fold was looked at.

    .venv/bin/python -m services.liveness.training.passive_cnn [--data ../shared/data]
        [--epochs 12] [--size 64] [--folds nuaa celeba ...]

(on the shared machine: `nice -n 10`, TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1).

Folds, presentations and crops: pad_data.py, as for the LR model (passive.py). For each held-out
fold:

* **LR** (configuration F of passive.py, the shipped recipe): trained on the other five, its
  threshold by minimax over an inner leave-one-fold-out on those five (exactly as passive.py;
  the feature tables are passive.py's, cached in .watchpost/cache/passive_features_v1.npz).
* **CNN** (recipe fixed up front, nothing chosen on any fold): the crop resized to 96 px, then
  per sample a random square cut of 75-100% of it, mirror, resolution loss (down to 30-100% and
  back), Gaussian blur, per-channel gain and gamma (colour cast), sensor noise and JPEG
  re-compression (quality 25-95), resized to SIZE px and standardised per image (each channel
  minus its mean, all divided by the image's standard deviation: a source's colour cast and
  exposure are gone before the network sees it). Conv-BN-ReLU 12 / 24 / 48 / 64 with 2x2
  pooling, global average pooling, dropout 0.3, sigmoid. Batches drawn so each (fold, class)
  of the training folds is sampled equally often; AdamW with a cosine schedule, label smoothing
  0.1, a fixed number of epochs, no early stopping. Threshold 0.5 (balanced training).
* **Fused**: each model's logit minus its own threshold's logit, divided by the standard
  deviation of its logits on its own training crops, summed; attack when >= 0.

Errors per presentation (mean score of its frames; for the fused score, the mean of the fused
logits). Prints per-fold tables and one JSON line; the held-out scores are cached in
.watchpost/cache/passive_cnn_scores.npz so a re-run only trains what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from services.liveness.training import loso
from services.liveness.training.pad_data import FOLDS, fold_samples
from services.liveness.training.passive import (
    CONFIGS,
    choose_threshold,
    feature_tables,
    fit,
    inner_scores,
)
from watchpost.progress import track
from watchpost.settings import PROJECT_ROOT, default_data_dir

CACHE = PROJECT_ROOT / ".watchpost" / "cache"
FEATURES = CACHE / "passive_features_v1.npz"
SCORES = CACHE / "passive_cnn_scores.npz"
LR_CONFIG = next(c for c in CONFIGS if c.name.startswith("F:"))
BASE = 96
BATCH = 64


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def standardise(batch: np.ndarray) -> np.ndarray:
    """(n, s, s, 3) -> float32: each channel minus its mean, divided by the image's std."""
    x = batch.astype(np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    return x / (x.std(axis=(1, 2, 3), keepdims=True) + 1.0)


def to_input(crop: np.ndarray, size: int) -> np.ndarray:
    h, w = crop.shape[:2]
    method = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=method)


def augment(base: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One strongly augmented SIZE-px copy of a BASE-px crop (see the module docstring)."""
    side = round(BASE * rng.uniform(0.75, 1.0))
    top, left = rng.integers(0, BASE - side + 1, 2)
    out = base[top : top + side, left : left + side]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    if rng.random() < 0.7:
        small = max(16, round(side * rng.uniform(0.3, 1.0)))
        out = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (side, side), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.5))
    x = out.astype(np.float64)
    if rng.random() < 0.8:
        x = 255.0 * (x / 255.0) ** np.exp(rng.uniform(-0.4, 0.4))
        x = x * rng.uniform(0.75, 1.25, 3) * rng.uniform(0.8, 1.2)
    if rng.random() < 0.4:
        x = x + rng.normal(0, rng.uniform(2, 8), x.shape)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        _ok, buffer = cv2.imencode(
            ".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 96))]
        )
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        assert decoded is not None  # our own encoding
        out = decoded[..., ::-1]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def build_cnn(size: int):
    from tensorflow import keras
    from tensorflow.keras import layers

    def block(x, filters: int):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (12, 24, 48):
        x = layers.MaxPooling2D()(block(x, filters))
    x = layers.GlobalAveragePooling2D()(block(x, 64))
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x), name="passive_cnn")


def sampling_weights(units: np.ndarray, labels: np.ndarray) -> np.ndarray:
    keys = [f"{u}:{lab}" for u, lab in zip(units, labels, strict=True)]
    _names, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights / weights.sum()


def train_cnn(bases, labels, units, *, size: int, epochs: int, seed: int):
    """A CNN trained on BASE-px crops; returns (model, logit std on its training crops)."""
    from tensorflow import keras

    from services.liveness.training.common import seed_everything

    seed_everything(seed)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    p = sampling_weights(units, labels)
    steps = int(np.ceil(len(labels) / BATCH))

    def batches():
        while True:
            index = rng.choice(len(labels), BATCH, p=p)
            x = np.stack([augment(bases[i], size, rng) for i in index])
            yield standardise(x), labels[index].astype(np.float32)

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, (epochs - 1) * steps), alpha=0.01, warmup_target=2e-3, warmup_steps=steps
    )
    model = build_cnn(size)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-3),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=0.1),
    )
    model.fit(batches(), steps_per_epoch=steps, epochs=epochs, verbose=2)
    train_inputs = standardise(
        np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_AREA) for b in bases])
    )
    spread = float(np.std(_logit(predict(model, train_inputs))))
    return model, spread


def predict(model, inputs: np.ndarray) -> np.ndarray:
    return model.predict(inputs, batch_size=256, verbose=0).ravel()


def cached_feature_tables(samples) -> dict[str, np.ndarray]:
    """The F features of `samples` (`plain`, and `camera`: the camera-augmented copies), from
    the cache when it is there (the LR experiments share it), else computed and cached."""
    if FEATURES.exists():
        stored = np.load(FEATURES)
        return {"plain": stored["plain"], "camera": stored["camera"]}
    tables = feature_tables(samples, ("camera",))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FEATURES, plain=tables["plain"], camera=tables["camera"])
    return tables


def lr_scores(samples, y, units, presentations) -> dict[str, dict]:
    """Per held-out fold: the F model's held-out scores, inner threshold and training spread."""
    tables = cached_feature_tables(samples)
    out = {}
    for fold in track(FOLDS, "LR per fold"):
        held, train = units == fold, units != fold
        aug = tables["camera"][train]
        model = fit(tables["plain"][train], y[train], units[train], LR_CONFIG, aug)
        inner = inner_scores(tables["plain"][train], y[train], units[train], LR_CONFIG, aug)
        threshold = choose_threshold(
            inner, y[train], units[train], presentations[train], LR_CONFIG.rule
        )
        mask = model._mask
        own = model.scores_from_features(tables["plain"][train][:, mask])
        out[fold] = {
            "scores": model.scores_from_features(tables["plain"][held][:, mask]),
            "threshold": threshold,
            "spread": float(np.std(_logit(own))),
        }
    return out


def rates(scores, y, presentations, threshold) -> dict:
    p_scores, p_labels, _ = loso.by_presentation(scores, y, presentations)
    return loso.summary(p_scores, p_labels, threshold)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folds", nargs="+", default=list(FOLDS))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cv2.setNumThreads(1)
    started = time.time()
    samples, y, units, presentations = fold_samples(args.data)
    bases = np.stack([to_input(s.crop, BASE) for s in samples])

    lr = lr_scores(samples, y, units, presentations)
    key = f"cnn_s{args.size}_e{args.epochs}_seed{args.seed}"
    cached = dict(np.load(SCORES)) if SCORES.exists() else {}
    for fold in args.folds:
        name = f"{key}:{fold}"
        if name in cached:
            continue
        held, train = units == fold, units != fold
        t0 = time.time()
        model, spread = train_cnn(
            bases[train], y[train], units[train], size=args.size, epochs=args.epochs, seed=args.seed
        )
        inputs = standardise(
            np.stack(
                [
                    cv2.resize(b, (args.size, args.size), interpolation=cv2.INTER_AREA)
                    for b in bases[held]
                ]
            )
        )
        cached[name] = predict(model, inputs)
        cached[f"{name}:spread"] = np.array([spread])
        np.savez(SCORES, **cached)
        print(f"CNN without {fold}: {time.time() - t0:.0f} s", flush=True)

    result: dict = {"benchmark": "passive_cnn_loso", "recipe": key, "folds": {}}
    for method in ("lr", "cnn", "fused"):
        acers = {}
        for fold in args.folds:
            held = units == fold
            p = presentations[held]
            z_lr = (_logit(lr[fold]["scores"]) - _logit(np.array(lr[fold]["threshold"]))) / lr[
                fold
            ]["spread"]
            cnn = cached[f"{key}:{fold}"]
            z_cnn = _logit(cnn) / float(cached[f"{key}:{fold}:spread"][0])
            if method == "lr":
                r = rates(lr[fold]["scores"], y[held], p, lr[fold]["threshold"])
            elif method == "cnn":
                r = rates(cnn, y[held], p, 0.5)
            else:
                r = rates(z_lr + z_cnn, y[held], p, 0.0)
            acers[fold] = r["acer"]
            result["folds"].setdefault(fold, {})[method] = {k: round(v, 4) for k, v in r.items()}
            print(
                f"{method:6s} {fold:9s} APCER {100 * r['apcer']:5.1f} "
                f"BPCER {100 * r['bpcer']:5.1f} ACER {100 * r['acer']:5.1f} AUC {r['auc']:.3f}"
            )
        worst = max(acers, key=lambda f: acers[f])
        result[method] = {
            "median_acer": round(float(np.median(list(acers.values()))), 4),
            "worst_acer": round(acers[worst], 4),
            "worst_fold": worst,
        }
        print(method, result[method])
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
