"""Face verification accuracy in the LFW protocol, on any pairs file and image folder.

    .venv/bin/python -m benchmarks.verification_accuracy PAIRS IMAGES [--roc roc.png]

PAIRS is LFW's `pairs.txt` (header "<folds> <n>", then per fold n matched "name i j" and n
mismatched "name1 i name2 j" lines); IMAGES holds IMAGES/<name>/<name>_<i:04d>.<jpg|png|…>.
Accuracy is the mean and std over the folds, each scored at the threshold that is best on the
other nine. Reference in the same run: accuracy at dlib's fixed threshold 0.6, and dlib's
published 99.38% on LFW. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.faces import embed_largest

PUBLISHED_LFW_ACCURACY = 0.9938  # dlib_face_recognition_resnet_model_v1, as its author reports


def read_pairs(path: Path) -> tuple[int, list[tuple[str, int, str, int, bool]]]:
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    folds, per_fold = int(lines[0][0]), int(lines[0][1])
    pairs = []
    for fields in lines[1:]:
        if len(fields) == 3:
            pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2]), True))
        elif len(fields) == 4:
            pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3]), False))
        else:
            raise SystemExit(f"malformed pairs line: {' '.join(fields)}")
    if len(pairs) != folds * per_fold * 2:
        raise SystemExit(f"{len(pairs)} pairs, expected {folds} folds x {per_fold} x 2")
    return folds, pairs


def image_path(images: Path, name: str, index: int) -> Path:
    for path in (images / name).glob(f"{name}_{index:04d}.*"):
        return path
    raise SystemExit(f"missing image {name}_{index:04d} under {images / name}")


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    candidates = np.unique(distances)
    accuracy = [np.mean((distances <= t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    thresholds = np.sort(np.unique(distances))
    tpr = np.array([np.mean(distances[same] <= t) for t in thresholds])
    fpr = np.array([np.mean(distances[~same] <= t) for t in thresholds])
    return np.concatenate([[0], fpr, [1]]), np.concatenate([[0], tpr, [1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--roc", type=Path, default=Path("verification_roc.png"))
    args = parser.parse_args()
    folds, pairs = read_pairs(args.pairs)
    started = time.perf_counter()
    distances = np.array(
        [
            float(
                np.linalg.norm(
                    embed_largest(image_path(args.images, a, i))
                    - embed_largest(image_path(args.images, b, j))
                )
            )
            for a, i, b, j, _ in pairs
        ]
    )
    embed_seconds = time.perf_counter() - started
    same = np.array([p[4] for p in pairs])
    fold_of = np.repeat(np.arange(folds), len(pairs) // folds)
    accuracies, thresholds = [], []
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((distances[test] <= threshold) == same[test])))
    fpr, tpr = roc(distances, same)
    auc = float(np.trapezoid(tpr, fpr))
    _plot(fpr, tpr, auc, args.roc)
    figures = {
        "pairs": len(pairs),
        "folds": folds,
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "threshold_mean": float(np.mean(thresholds)),
        "accuracy_at_0.6": float(np.mean((distances <= 0.6) == same)),
        "published_lfw_accuracy": PUBLISHED_LFW_ACCURACY,
        "auc": auc,
        "images_embedded": len(
            {(a, i) for a, i, *_ in pairs} | {(b, j) for _, _, b, j, _ in pairs}
        ),
        "embedding_seconds": embed_seconds,
        "roc_png": str(args.roc),
    }
    print(
        f"accuracy {figures['accuracy_mean']:.4f} ± {figures['accuracy_std']:.4f} "
        f"over {folds} folds "
        f"(threshold {figures['threshold_mean']:.3f}); at 0.6: {figures['accuracy_at_0.6']:.4f}; "
        f"published on LFW: {PUBLISHED_LFW_ACCURACY}; AUC {auc:.4f}; ROC in {args.roc}"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


def _plot(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(fpr, tpr, label=f"dlib ResNet, AUC {auc:.4f}")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="false accept rate", ylabel="true accept rate", title="Verification ROC")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
