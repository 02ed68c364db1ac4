"""How the CEW eye patches are framed: the side of the square patch in eye widths.

    .venv/bin/python -m benchmarks.eye_framing [--faces 400]

The CEW patches come without landmarks, so the framing is measured by matching: eyes of LFW
View 1 faces (open, 250x250, eyes about 25-35 px wide) are cut by `eyes.eye_patches` at framings
from 1.2 to 2.8 eye widths, and each framing's mean standardised patch is correlated with the
mean standardised open-eye CEW patch. The best framing is the one whose mean eye looks like
CEW's (same eye size and position in the square). Per-eye best framings give the spread.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from services.liveness.blink import eye_widths
from services.liveness.eyes import EYE_FRAMING, eye_patches, standardise
from services.liveness.training.eye_state import ARCHIVE, load_patches
from watchpost.progress import track
from watchpost.settings import default_data_dir
from watchpost.vision.faces import detect_faces, landmarks_68

FRAMINGS = np.round(np.arange(1.2, 2.81, 0.05), 2)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--faces", type=int, default=400)
    args = parser.parse_args()
    data = args.data or default_data_dir()
    patches, labels, _ = load_patches(data / ARCHIVE)
    cew = standardise(patches[labels == 0])
    # Left and right eyes are mirror images: compare against the mirror-symmetrised mean.
    cew_mean = (cew.mean(axis=0) + cew.mean(axis=0)[:, ::-1]) / 2
    images = sorted((data / "faces/lfw_view1_devtest/images").glob("*/*.jpg"))[::3][: args.faces]
    if not images:
        raise SystemExit(f"no LFW images under {data / 'faces/lfw_view1_devtest/images'}")
    sums = {k: np.zeros((24, 24), np.float64) for k in FRAMINGS}
    per_eye: list[list[np.ndarray]] = []
    widths: list[float] = []
    for path in track(images, "LFW faces"):
        grey = np.asarray(Image.open(path).convert("L"))
        boxes = detect_faces(np.stack([grey] * 3, axis=-1), upsample=0)
        if not boxes:
            continue
        landmarks = landmarks_68(grey, boxes[0])
        widths.extend(eye_widths(landmarks))
        cuts = {k: standardise(eye_patches(grey, landmarks, framing=k)) for k in FRAMINGS}
        for k, cut in cuts.items():
            sums[k] += cut[0] + cut[1][:, ::-1]
        per_eye.append([cuts[k] for k in FRAMINGS])
    n = len(per_eye)
    scores = {float(k): correlation(sums[k] / (2 * n), cew_mean) for k in FRAMINGS}
    best = max(scores, key=lambda k: scores[k])
    each = []
    for framed in per_eye:
        for side in (0, 1):
            eye_cuts = [c[side] if side == 0 else c[side][:, ::-1] for c in framed]
            each.append(FRAMINGS[int(np.argmax([correlation(e, cew_mean) for e in eye_cuts]))])
    for k in FRAMINGS[::2]:
        print(f"framing {k:.2f} eye widths: correlation with CEW's mean open eye {scores[k]:.3f}")
    figures = {
        "lfw_faces": n,
        "lfw_eye_width_px_median": round(float(np.median(widths)), 1),
        "cew_open_patches": len(cew),
        "best_framing_mean_eye": best,
        "best_correlation": round(scores[best], 4),
        "per_eye_best_framing_median": float(np.median(each)),
        "per_eye_best_framing_iqr": [float(np.percentile(each, q)) for q in (25, 75)],
        "framing_in_use": EYE_FRAMING,
        "correlation_in_use": round(scores[min(scores, key=lambda k: abs(k - EYE_FRAMING))], 4),
    }
    median = figures["per_eye_best_framing_median"]
    print(f"best framing {best:.2f} eye widths (per eye: median {median:.2f})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
