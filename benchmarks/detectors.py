"""Face detectors against dlib's HOG (one upsampling step, the shipped detector), in one run:
recall of the faces HOG finds by face-size band, detections HOG does not make (and how many of
those dlib's CNN detector confirms as faces), cost per frame, and how far the 128-d embedding of
a detector's box moves from the embedding of HOG's box for the same face.

    nice -n 10 .venv/bin/python -m benchmarks.detectors [--every 10] [--fit]

Data (WATCHPOST_DATA_DIR, the shared data): frames of the three shared videos at capture's
640-px width (every `--every`-th; the crowd clip, 105 frames, every third) and the shared face
photos (faces/train, test, extra, bbt/group) capped at 640 px wide, as capture caps frames.

A HOG face counts as found when a detector's box overlaps it by IoU >= 0.3 (the tracker's own
matching threshold). A detector box overlapping no HOG face is checked with dlib's MMOD CNN on a
crop around it: "confirmed" when the CNN finds a face there (a face HOG missed), else "false".
The BlazeFace box mapping (watchpost/vision/blazeface.py `HOG_FITS`) is fitted on the talking
clip and faces/train (`--fit` prints it from the raw boxes); every figure below is reported for
the fit sources and the others apart, so the mapping is judged on data it was not fitted on.
Progress on stderr; a table; last line one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks.report import print_json
from watchpost.geometry import BoxTuple as Box
from watchpost.images import load_rgb
from watchpost.progress import bar
from watchpost.settings import default_data_dir
from watchpost.vision import blazeface, models
from watchpost.vision.faces import detect_faces, detect_faces_cnn, embed_face
from watchpost.vision.tracking import iou

WIDTH = 640
MATCH_IOU = 0.3
BANDS = ((0, 60), (60, 100), (100, 160), (160, 10_000))  # HOG box width, frame pixels
FIT_SOURCES = {"talking_blinks_720p.mp4", "faces/train"}


@dataclass
class Sample:
    source: str
    name: str
    rgb: np.ndarray


def capped(rgb: np.ndarray, width: int = WIDTH) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


def video_frames(path: Path, every: int) -> list[Sample]:
    capture = cv2.VideoCapture(str(path))
    samples, index = [], 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % every == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            samples.append(Sample(path.name, f"{path.name}#{index}", capped(rgb)))
        index += 1
    capture.release()
    return samples


def photos(root: Path, folder: str) -> list[Sample]:
    paths = sorted(
        p for p in (root / folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    return [Sample(f"faces/{folder}", str(p.relative_to(root)), capped(load_rgb(p))) for p in paths]


def load_samples(data: Path, every: int, per_source: int | None = None) -> list[Sample]:
    video = data / "video"
    sources = [
        video_frames(video / "talking_blinks_720p.mp4", every),
        video_frames(video / "two_people_1080p.mp4", every),
        video_frames(video / "crowd_walk_1080p.mp4", max(1, every // 3)),
    ]
    sources += [photos(data / "faces", f) for f in ("train", "test", "extra", "bbt/group")]
    return [s for source in sources for s in source[:per_source]]


Detector = Callable[[np.ndarray], list[Box]]


def raw_blazeface(network: str, tiled: bool) -> Callable[[np.ndarray], list[blazeface.Detection]]:
    runner, net = models.blazeface(network), blazeface.NETWORKS[network]
    return lambda rgb: blazeface.detect(rgb, runner, net, tiled=tiled)


def detectors() -> dict[str, Detector]:
    """Every variant measured; the first is the reference."""

    def blaze(network: str, tiled: bool) -> Detector:
        return lambda rgb: blazeface.detect_faces(rgb, network=network, tiled=tiled)

    return {
        "hog, upsample 1 (reference)": lambda rgb: detect_faces(rgb, upsample=1),
        "hog, upsample 0": lambda rgb: detect_faces(rgb, upsample=0),
        "blazeface short, letterboxed": blaze("short", False),
        "blazeface short, tiled": blaze("short", True),
        "blazeface full, letterboxed": blaze("full", False),
        "blazeface full, tiled": blaze("full", True),
    }


def band_of(box: Box) -> str:
    width = box[2] - box[0]
    for low, high in BANDS:
        if low <= width < high:
            return f"{low}-{high}" if high < 10_000 else f"{low}+"
    return "?"


def cnn_confirms(rgb: np.ndarray, box: Box) -> bool:
    """dlib's MMOD CNN finds a face overlapping `box`, on a crop around it scaled so the box is
    about 100 px (the CNN's comfortable size)."""
    h, w = rgb.shape[:2]
    side = max(box[2] - box[0], box[3] - box[1])
    left, top = max(0, box[0] - side), max(0, box[1] - side)
    right, bottom = min(w, box[2] + side), min(h, box[3] + side)
    crop = rgb[top:bottom, left:right]
    scale = 100 / max(side, 1)
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    target = tuple(
        round(v * scale) for v in (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
    )
    return any(iou(found, target) >= MATCH_IOU for found in detect_faces_cnn(crop, upsample=0))  # type: ignore[arg-type]


@dataclass
class Tally:
    ms: list[float] = field(default_factory=list)
    found: dict[str, list[int]] = field(default_factory=dict)  # band -> [found, of]
    extra: int = 0
    confirmed: int = 0
    ious: list[float] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)
    distances_by_band: dict[str, list[float]] = field(default_factory=dict)

    def add(self, band: str, hit: bool) -> None:
        entry = self.found.setdefault(band, [0, 0])
        entry[0] += hit
        entry[1] += 1

    def recall(self, band: str | None = None) -> float | None:
        pairs = [v for k, v in self.found.items() if band is None or k == band]
        total = sum(p[1] for p in pairs)
        return sum(p[0] for p in pairs) / total if total else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fit_mapping(samples: list[Sample], network: str) -> dict[str, float]:
    """The median offset and scale from BlazeFace's raw box (tiled, as capture runs it) to
    HOG's box of the same face (its centre within half HOG's side of BlazeFace's)."""
    detect = raw_blazeface(network, True)
    dx, dy, scale = [], [], []
    for sample in samples:
        hog = detect_faces(sample.rgb, upsample=1)
        for found in detect(sample.rgb):
            x0, y0, x1, y1 = (float(v) for v in found.box)
            side = max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            for h in hog:
                hs = h[2] - h[0]
                hx, hy = (h[0] + h[2]) / 2, (h[1] + h[3]) / 2
                if abs(hx - cx) < hs / 2 and abs(hy - cy) < hs / 2:
                    dx.append((hx - cx) / side)
                    dy.append((hy - cy) / side)
                    scale.append(hs / side)
    return {
        "dx": statistics.median(dx),
        "dy": statistics.median(dy),
        "scale": statistics.median(scale),
        "pairs": len(dx),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=10, help="every N-th video frame")
    parser.add_argument("--fit", action="store_true", help="print the box mapping and stop")
    parser.add_argument(
        "--embed",
        nargs="*",
        default=["hog, upsample 0", "blazeface short, tiled", "blazeface full, tiled"],
        help="the variants whose boxes are embedded",
    )
    parser.add_argument("--embed-max", type=int, default=12, help="faces embedded per source")
    parser.add_argument("--max-per-source", type=int, default=None, help="a quick look")
    args = parser.parse_args()
    samples = load_samples(default_data_dir(), args.every, args.max_per_source)
    if args.fit:
        fitting = [s for s in samples if s.source in FIT_SOURCES]
        print_json({"fit": {n: fit_mapping(fitting, n) for n in blazeface.NETWORKS}})
        return
    variants = detectors()
    models.warm_up(detector=True, encoder=True, blazeface_network="full")
    models.warm_up(blazeface_network="short")
    models.cnn_face_detector()
    split = {"fit": [s for s in samples if s.source in FIT_SOURCES]}
    split["held out"] = [s for s in samples if s.source not in FIT_SOURCES]
    tallies = {(part, name): Tally() for part in split for name in variants}
    embedded: dict[tuple[str, str], int] = {}
    with bar(auto_refresh=False) as progress:
        task = progress.add_task("frames and photos, every detector", total=len(samples))
        for part, group in split.items():
            for sample in group:
                found: dict[str, list[Box]] = {}
                for name, detect in variants.items():  # the same frame, one after the other
                    start = time.perf_counter()
                    found[name] = detect(sample.rgb)
                    tallies[part, name].ms.append(1000 * (time.perf_counter() - start))
                reference = found[next(iter(variants))]
                for name, boxes in found.items():
                    tally = tallies[part, name]
                    for h in reference:
                        best = max((iou(h, b) for b in boxes), default=0.0)
                        tally.add(band_of(h), best >= MATCH_IOU)
                        if best >= MATCH_IOU:
                            tally.ious.append(best)
                    for b in boxes:
                        if all(iou(h, b) < MATCH_IOU for h in reference):
                            tally.extra += 1
                            tally.confirmed += cnn_confirms(sample.rgb, b)
                    if name not in args.embed:
                        continue
                    for h in reference:
                        if embedded.get((sample.source, name), 0) >= args.embed_max:
                            break
                        overlaps = [(iou(h, b), b) for b in boxes]
                        overlap, match = max(overlaps, default=(0.0, h))
                        if overlap < MATCH_IOU:
                            continue
                        hog_vector = embed_face(sample.rgb, h)
                        distance = float(np.linalg.norm(hog_vector - embed_face(sample.rgb, match)))
                        tally.distances.append(distance)
                        tally.distances_by_band.setdefault(band_of(h), []).append(distance)
                        key = (sample.source, name)
                        embedded[key] = embedded.get(key, 0) + 1
                progress.advance(task)
                progress.refresh()
    reference_name = next(iter(variants))
    bands = [band_of((0, 0, low, low)) for low, _ in BANDS]
    figures: dict[str, object] = {
        "samples": {part: len(group) for part, group in split.items()},
        "match_iou": MATCH_IOU,
        "fit": {n: vars(f) for n, f in blazeface.HOG_FITS.items()},
    }
    print(
        "| data | detector | ms/frame | vs HOG | recall of HOG's faces | "
        + " | ".join(f"{b} px" for b in bands)
        + " | not HOG's (CNN confirms) | IoU p50 | embedding distance p50 / max (faces) |"
    )
    print("| --- " * (9 + len(bands)) + "|")
    rows = []
    for part in split:
        base = statistics.median(tallies[part, reference_name].ms)
        for name in variants:
            tally = tallies[part, name]
            ms = statistics.median(tally.ms)
            distances = tally.distances
            row = {
                "data": part,
                "detector": name,
                "ms_per_frame": ms,
                "cost_vs_hog": ms / base,
                "recall_of_hog": tally.recall(),
                "recall_by_band": {b: tally.recall(b) for b in bands},
                "hog_faces_by_band": {b: tally.found.get(b, [0, 0])[1] for b in bands},
                "not_hogs": tally.extra,
                "not_hogs_cnn_confirmed": tally.confirmed,
                "false": tally.extra - tally.confirmed,
                "iou_p50": statistics.median(tally.ious) if tally.ious else None,
                "embedding_distance_p50": statistics.median(distances) if distances else None,
                "embedding_distance_max": max(distances) if distances else None,
                "embedding_distance_max_by_band": {
                    b: max(v) for b, v in tally.distances_by_band.items()
                },
                "embedded": len(distances),
            }
            rows.append(row)
            by_band = " | ".join(
                f"{fmt(tally.recall(b))} ({tally.found.get(b, [0, 0])[1]})" for b in bands
            )
            spread = (
                f"{statistics.median(distances):.3f} / {max(distances):.3f} ({len(distances)})"
                if distances
                else "-"
            )
            iou_p50 = statistics.median(tally.ious) if tally.ious else None
            print(
                f"| {part} | {name} | {ms:.1f} | {ms / base:.2f} | {fmt(tally.recall())} | "
                f"{by_band} | {tally.extra} ({tally.confirmed}) | {fmt(iou_p50)} | {spread} |"
            )
    figures["rows"] = rows
    print_json(figures)


if __name__ == "__main__":
    main()
