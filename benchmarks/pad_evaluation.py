"""Presentation-attack detection on any `real/` and `spoof/` folders of images or videos.

    .venv/bin/python -m benchmarks.pad_evaluation FOLDER [--threshold T]

Every image, and every 5th frame of every video, is searched for its largest face, which the
passive CNN scores. Reports ISO/IEC 30107-3 figures per face crop (APCER: attacks accepted as
bona fide; BPCER: bona fide rejected; ACER: their mean) and per item (an image, or a video
judged by its mean score), at the model card's threshold and, as the reference, at 0.5. Faces
narrower than the service's minimum are skipped and counted. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from services.liveness.passive import SpoofClassifier, spoof_crop
from services.liveness.training.common import pad_metrics
from watchpost.settings import LivenessSettings
from watchpost.vision.faces import detect_faces

VIDEO = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def frames_of(path: Path, every: int = 5):
    if path.suffix.lower() in IMAGE:
        image = cv2.imread(str(path))
        if image is not None:
            yield image
        return
    capture = cv2.VideoCapture(str(path))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        if index % every == 0:
            yield frame
        index += 1


def crops_of(path: Path, min_face: int) -> tuple[list[np.ndarray], int]:
    crops, small = [], 0
    for bgr in frames_of(path):
        if bgr.shape[1] > 640:
            bgr = cv2.resize(bgr, (640, round(bgr.shape[0] * 640 / bgr.shape[1])))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes = detect_faces(rgb, upsample=1)[:1]
        if boxes and boxes[0][2] - boxes[0][0] >= min_face:
            crops.append(spoof_crop(rgb, boxes[0]))
        elif boxes:
            small += 1
    return crops, small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()
    classifier = SpoofClassifier()
    threshold = args.threshold or classifier.threshold
    min_face = LivenessSettings().liveness_passive_min_face
    crop_labels, crop_scores, item_labels, item_scores = [], [], [], []
    skipped_small = 0
    for label, kind in ((0, "real"), (1, "spoof")):
        for path in sorted((args.folder / kind).rglob("*")):
            if path.suffix.lower() not in VIDEO | IMAGE:
                continue
            crops, small = crops_of(path, min_face)
            skipped_small += small
            if not crops:
                continue
            scores = classifier.scores(np.stack(crops))
            crop_scores += list(scores)
            crop_labels += [label] * len(scores)
            item_scores.append(float(np.mean(scores)))
            item_labels.append(label)
    if not crop_labels:
        raise SystemExit(f"no usable faces under {args.folder}/real and {args.folder}/spoof")
    crop_labels, crop_scores = np.array(crop_labels), np.array(crop_scores)
    item_labels, item_scores = np.array(item_labels), np.array(item_scores)
    figures = {
        "threshold": threshold,
        "per_crop": pad_metrics(crop_labels, crop_scores, threshold),
        "per_item": pad_metrics(item_labels, item_scores, threshold),
        "per_crop_at_0.5": pad_metrics(crop_labels, crop_scores, 0.5),
        "skipped_small_faces": skipped_small,
    }
    for name in ("per_crop", "per_item", "per_crop_at_0.5"):
        m = figures[name]
        print(
            f"{name:>16}: APCER {m['apcer']:.4f}  BPCER {m['bpcer']:.4f}  ACER {m['acer']:.4f} "
            f"({m['attacks']} attacks, {m['bona_fide']} bona fide, threshold {m['threshold']:.3f})"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
