"""Cost per face of two passive models on the same crops, in the same run, one core.

    .venv/bin/python -m benchmarks.passive_cost --reference OLD.json [--model NEW.json]
        [--data ../shared/data] [--crops 300] [--passes 3]

The crops are the training crops (pad_data, cached), every k-th, at their stored size (at most
256 px). Each model scores them one at a time (`PassiveModel.scores([crop])`: features of its
groups + the model), on one OpenCV thread, interleaved pass by pass (the order alternating) so
both see the same load; the median pass is reported, and the ratio model / reference. Last
line: JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import track

from services.liveness.passive_model import DEFAULT_PATH, PassiveModel
from services.liveness.training.pad_data import FOLDS, load_samples
from watchpost.settings import default_data_dir


def per_face_ms(model: PassiveModel, crops: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for crop in crops:
        model.scores([crop])
    return (time.perf_counter() - start) / len(crops) * 1000


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--crops", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    samples, _ = load_samples(args.data)
    samples = [s for s in samples if s.item.fold in FOLDS]
    crops = [s.crop for s in samples[:: max(1, len(samples) // args.crops)]]
    models = {
        "reference": PassiveModel.load(args.reference),
        "model": PassiveModel.load(args.model),
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    for one in models.values():  # warm both up (first calls allocate) before timing either
        one.scores(crops[:5])
    for index in track(range(args.passes), description="passes"):
        order = list(models.items())
        for name, model in order if index % 2 == 0 else order[::-1]:
            times[name].append(per_face_ms(model, crops))
    result: dict[str, Any] = {
        "benchmark": "passive_cost",
        "crops": len(crops),
        "crop_side_median_px": int(np.median([min(c.shape[:2]) for c in crops])),
        **{f"{name}_groups": models[name].groups for name in models},
        **{f"{name}_ms_per_face": round(float(np.median(t)), 2) for name, t in times.items()},
    }
    result["ratio"] = round(result["model_ms_per_face"] / result["reference_ms_per_face"], 3)
    print(
        f"{len(crops)} crops: reference {result['reference_ms_per_face']} ms, model "
        f"{result['model_ms_per_face']} ms per face (ratio {result['ratio']})"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
