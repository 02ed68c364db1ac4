"""Eye-state CNN accuracy on any folder of eye patches, and its batched speed.

    .venv/bin/python -m benchmarks.eye_state_accuracy FOLDER

FOLDER holds `open/` and `closed/` sub-folders of eye images (any size; they are turned grey and
resized to 24x24), or is the CEW zip itself (`closed*/` and `open*/` folders inside). Reports
accuracy, precision and recall for "closed" against the majority-class baseline, and patches per
second batched (as the liveness service runs it) against one call per patch. Last line: JSON.
Note: on the CEW zip this includes the patches the model was trained on; the held-out figure
is in services/liveness/models/eye_state.metrics.json.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.eyes import EYE_PATCH, EyeStateClassifier
from services.liveness.training.common import binary_metrics
from watchpost.progress import track


def patch(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L").resize((EYE_PATCH, EYE_PATCH)))


def load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    items: list[tuple[str, bytes]] = []
    if folder.suffix == ".zip":
        with zipfile.ZipFile(folder) as bundle:
            items = [
                (n.split("/")[-2], bundle.read(n))
                for n in bundle.namelist()
                if n.lower().endswith((".jpg", ".png"))
            ]
    else:
        for kind in ("open", "closed"):
            items += [
                (kind, p.read_bytes()) for p in sorted((folder / kind).glob("*")) if p.is_file()
            ]
    if not items:
        raise SystemExit(f"no eye images under {folder} (expected open/ and closed/)")
    labels = np.array([1 if parent.lower().startswith("closed") else 0 for parent, _ in items])
    return np.stack([patch(data) for _, data in track(items, "eye images")]), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    patches, labels = load(args.folder)
    classifier = EyeStateClassifier()
    classifier.scores(patches[:2])  # load the model outside the timings
    started = time.perf_counter()
    scores = np.concatenate(  # timed: no progress bar in here
        [classifier.scores(patches[i : i + 64]) for i in range(0, len(patches), 64)]
    )
    batched = len(patches) / (time.perf_counter() - started)
    sample = patches[:100]
    started = time.perf_counter()
    for single in sample:
        classifier.scores(single[None])
    one_by_one = len(sample) / (time.perf_counter() - started)
    metrics = binary_metrics(labels, scores)
    majority = float(max(labels.mean(), 1 - labels.mean()))
    figures = {
        "patches": len(labels),
        "closed": int(labels.sum()),
        **{k: metrics[k] for k in ("accuracy", "precision", "recall")},
        "majority_baseline_accuracy": majority,
        "patches_per_second_batched": batched,
        "patches_per_second_one_by_one": one_by_one,
        "batching_speedup": batched / one_by_one,
    }
    print(
        f"accuracy {metrics['accuracy']:.4f} (majority baseline {majority:.4f}); closed precision "
        f"{metrics['precision']:.4f}, recall {metrics['recall']:.4f}; "
        f"{batched:.0f} patches/s batched, {one_by_one:.0f}/s one by one"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
