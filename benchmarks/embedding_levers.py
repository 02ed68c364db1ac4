"""The embedding's levers on LFW View 1, each against the shipped setting in one run.

    .venv/bin/python -m benchmarks.embedding_levers PAIRS IMAGES [--cache DIR] [--levers ...]

Shipped: HOG with one upsampling step (the MMOD CNN on HOG's misses), the face nearest the
image's centre (the benchmark's reading of LFW, as in `verification_accuracy`), dlib's 5-point
alignment, a 150 px chip with 0.25 padding, no jitter, Euclidean distance. Each lever changes
one of those:

- `flip`: the mean of the chip's embedding and its mirror's (`flip-mean`, not renormalised),
  or that mean scaled back to the mean norm of the unflipped embeddings (`flip-unit`), or
  flipped on the first image only against the plain second (`flip-one-side`: a gallery
  enrolled unflipped against flipped camera faces, or the other way);
- `jitter10`: dlib's 10 jitters (`compute_face_descriptor`'s `num_jitters`) on both images of
  a pair, which recognition's per-frame budget cannot pay on the camera side; `enrol-jitter5`,
  `enrol-jitter10`, `enrol-jitter20`: on the first image of each pair only (the enrolled side,
  as `WATCHPOST_RECOGNITION_ENROL_JITTER` embeds an enrolment photo), the second (the camera's
  side) unjittered. An enrolment lever embeds only the pairs' first images (853 of View 1's
  1,549); `jitter10` embeds all, and then scores `enrol-jitter10` from the same embeddings;
- `pad0.15` ... `pad0.35`: get_face_chip's padding; `chip300`: the chip cut at 300 px and
  reduced to 150 with area averaging (the network takes 150 px only);
- `up0`, `up2`: HOG upsampling steps;
- `cosine`: the shipped embedding scored by cosine distance.

Every lever is scored as `verification_accuracy` scores (10 folds in file order, each at the
threshold best on the other nine) and compared with the shipped one **pair by pair**: the
difference in accuracy per fold gives a paired standard error, which is what says whether a
gain is more than noise (the two accuracies share their pairs, so their own SEs overlap far
more than the difference varies). Cost: the median time of one face's embedding step
(chip and network, not detection) relative to the shipped step, timed in turn on the same
faces in the same run (`--cost-faces`).

View 1 is the tuning set: a lever chosen here is tuned here. Embeddings are cached per image
and lever (`--cache`, default .watchpost/cache/embedding_levers), so reruns score at once.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from benchmarks.faces import load_rgb, nearest_centre
from benchmarks.report import print_json
from benchmarks.verification_accuracy import best_threshold, image_path, read_pairs
from watchpost.progress import bar
from watchpost.vision import models
from watchpost.vision.faces import detect_faces, detect_faces_cnn, dlib_rect

CHIP = 150  # the network's input size


@dataclass(frozen=True)
class Lever:
    name: str
    upsample: int = 1
    padding: float = 0.25
    cut: int = CHIP  # chip size cut from the image, reduced to CHIP when larger
    jitter: int = 0
    flip: bool = False  # embed the mirrored chip too (stored beside the plain one)


LEVERS = {
    lever.name: lever
    for lever in (
        Lever("shipped", flip=True),  # the mirror costs one more network pass, cached beside
        Lever("jitter5", jitter=5),
        Lever("jitter10", jitter=10),
        Lever("jitter20", jitter=20),
        Lever("pad0.15", padding=0.15),
        Lever("pad0.20", padding=0.20),
        Lever("pad0.30", padding=0.30),
        Lever("pad0.35", padding=0.35),
        Lever("chip300", cut=300),
        Lever("up0", upsample=0),
        Lever("up2", upsample=2),
    )
}


# Levers scored from another lever's embeddings on the first image of each pair only.
ENROL_SIDE = {f"enrol-jitter{j}": f"jitter{j}" for j in (5, 10, 20)}
CHOICES = [n for n in LEVERS if n not in ("jitter5", "jitter20")] + list(ENROL_SIDE)


def face_shape(rgb: np.ndarray, upsample: int) -> dlib.full_object_detection | None:
    """The 5 landmarks of the face nearest the centre (HOG, then the CNN on HOG's misses)."""
    boxes = detect_faces(rgb, upsample=upsample) or detect_faces_cnn(rgb, upsample=1)
    if not boxes:
        return None
    box = nearest_centre(boxes, rgb.shape[1], rgb.shape[0])
    return models.landmarks_5()(rgb, dlib_rect(box))


def chip_of(rgb: np.ndarray, shape: dlib.full_object_detection, lever: Lever) -> np.ndarray:
    chip = dlib.get_face_chip(rgb, shape, size=lever.cut, padding=lever.padding)
    if lever.cut != CHIP:
        chip = cv2.resize(chip, (CHIP, CHIP), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(chip)


def embed(chip: np.ndarray, jitter: int) -> np.ndarray:
    return np.asarray(models.face_encoder().compute_face_descriptor(chip, jitter), np.float32)


def lever_embeddings(
    lever: Lever, paths: list[Path], cache: Path, shapes: dict
) -> tuple[dict[Path, np.ndarray | None], dict[Path, np.ndarray | None]]:
    """Each image's embedding (and mirrored one when the lever flips), from the cache when
    there."""
    plain: dict[Path, np.ndarray | None] = {}
    mirrored: dict[Path, np.ndarray | None] = {}
    folder = cache / lever.name
    folder.mkdir(parents=True, exist_ok=True)
    with bar() as progress:
        task = progress.add_task(lever.name, total=len(paths))
        for path in paths:
            stored = folder / f"{path.parent.name}-{path.stem}.npz"
            if stored.exists():
                with np.load(stored) as saved:
                    plain[path] = saved["plain"] if saved["plain"].size else None
                    mirrored[path] = saved["mirror"] if saved["mirror"].size else None
            else:
                rgb = load_rgb(path)
                key = (path, lever.upsample)
                if key not in shapes:
                    shapes[key] = face_shape(rgb, lever.upsample)
                shape = shapes[key]
                vector = mirror = None
                if shape is not None:
                    chip = chip_of(rgb, shape, lever)
                    vector = embed(chip, lever.jitter)
                    if lever.flip:
                        mirror = embed(np.ascontiguousarray(chip[:, ::-1]), lever.jitter)
                plain[path], mirrored[path] = vector, mirror
                empty = np.zeros(0, np.float32)
                partial = stored.with_suffix(".partial.npz")  # renamed once whole: processes
                np.savez(  # sharing the cache never read a file half written
                    partial,
                    plain=empty if vector is None else vector,
                    mirror=empty if mirror is None else mirror,
                )
                partial.rename(stored)
            progress.advance(task)
    return plain, mirrored


def embedding_costs(paths: list[Path], names: list[str]) -> dict[str, float]:
    """Median ms of one face's embedding step per lever (chip cut and network; detection left
    out), the levers timed in turn on each face so that load on the machine hits all alike.
    `flip` is the shipped chip and its mirror, both embedded."""
    timed: dict[str, list[float]] = {name: [] for name in [*names, "flip"]}
    with bar() as progress:
        task = progress.add_task("cost", total=len(paths))
        for path in paths:
            rgb = load_rgb(path)
            shape = face_shape(rgb, 1)
            if shape is not None:
                for name in timed:
                    lever = LEVERS["shipped" if name == "flip" else name]
                    start = time.perf_counter()
                    chip = chip_of(rgb, shape, lever)
                    embed(chip, lever.jitter)
                    if name == "flip":
                        embed(np.ascontiguousarray(chip[:, ::-1]), lever.jitter)
                    timed[name].append((time.perf_counter() - start) * 1000)
            progress.advance(task)
    if not timed["shipped"]:
        raise SystemExit("no face found in the images the cost is timed on")
    return {name: statistics.median(times) for name, times in timed.items()}


def euclidean(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y))


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    return float(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def fold_accuracy(distances: np.ndarray, same: np.ndarray, fold_of: np.ndarray) -> dict:
    """Per fold: accuracy at the threshold best on the other folds; which pairs were right."""
    folds = int(fold_of.max()) + 1
    usable = np.isfinite(distances)
    right = np.zeros(len(distances), bool)
    accuracies, thresholds = [], []
    for fold in range(folds):
        train, test = (fold_of != fold) & usable, fold_of == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        right[test] = ((distances[test] <= threshold) == same[test]) & usable[test]
        accuracies.append(float(np.mean(right[test])))
    return {
        "accuracy": float(np.mean(accuracies)),
        "se": float(np.std(accuracies, ddof=1) / np.sqrt(folds)),
        "per_fold": np.array(accuracies),
        "errors": int((~right).sum()),
        "right": right,
        "threshold": float(np.mean(thresholds)),
        "missed_pairs": int((~usable).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--cache", type=Path, default=Path(".watchpost/cache/embedding_levers"))
    parser.add_argument(
        "--levers",
        nargs="*",
        default=[n for n in CHOICES if n not in ENROL_SIDE],
        choices=CHOICES,
        help="which to run",
    )
    parser.add_argument(
        "--embed-only",
        action="store_true",
        help="fill the cache for --levers and stop (several processes can share the work)",
    )
    parser.add_argument("--cost-faces", type=int, default=40, help="faces the cost is timed on")
    args = parser.parse_args()
    folds, pairs, fold_of = read_pairs(args.pairs)
    same = np.array([p[4] for p in pairs])
    firsts = [image_path(args.images, a, i) for a, i, *_ in pairs]
    seconds = [image_path(args.images, b, j) for _, _, b, j, _ in pairs]
    paths = sorted(set(firsts) | set(seconds))
    requested = args.levers if args.embed_only else ["shipped", *args.levers]
    # Each stored lever with the images it needs: an enrolment-side lever only the first ones.
    needed: dict[str, list[Path]] = {}
    for name in dict.fromkeys(requested):
        stored = ENROL_SIDE.get(name, name)
        if name in ENROL_SIDE:
            needed.setdefault(stored, sorted(set(firsts)))
        else:
            needed[stored] = paths
    shapes: dict = {}
    embedded = {}
    for name, wanted in needed.items():
        embedded[name] = lever_embeddings(LEVERS[name], wanted, args.cache, shapes)
    if args.embed_only:
        return
    names = list(needed)
    costs = embedding_costs(paths[:: max(1, len(paths) // args.cost_faces)], names)

    shipped_plain, shipped_mirror = embedded["shipped"]
    norms = [float(np.linalg.norm(v)) for v in shipped_plain.values() if v is not None]
    unit = statistics.mean(norms)

    def flip_mean(path: Path, renormalise: bool) -> np.ndarray | None:
        x, y = shipped_plain[path], shipped_mirror[path]
        if x is None or y is None:
            return None
        mean = (x + y) / 2
        return mean * (unit / np.linalg.norm(mean)) if renormalise else mean

    Get = Callable[[Path], np.ndarray | None]
    scored: dict[str, tuple[Get, Get, Callable[[np.ndarray, np.ndarray], float]]] = {}
    for name in names:
        table = embedded[name][0]
        if needed[name] is paths:
            scored[name] = (table.get, table.get, euclidean)
        enrol = f"enrol-{name}"
        if enrol in ENROL_SIDE and (enrol in requested or name in requested):
            # The enrolled (first) image jittered, the camera's (second) as shipped.
            scored[enrol] = (table.get, shipped_plain.get, euclidean)
    scored["flip-mean"] = (
        lambda p: flip_mean(p, False),
        lambda p: flip_mean(p, False),
        euclidean,
    )
    # One side flipped: a gallery enrolled before the change against flipped camera faces.
    scored["flip-one-side"] = (lambda p: flip_mean(p, False), shipped_plain.get, euclidean)
    scored["flip-unit"] = (lambda p: flip_mean(p, True), lambda p: flip_mean(p, True), euclidean)
    scored["cosine"] = (shipped_plain.get, shipped_plain.get, cosine)
    scored["flip-cosine"] = (
        lambda p: flip_mean(p, False),
        lambda p: flip_mean(p, False),
        cosine,
    )

    results = {}
    for name, (first, second, metric) in scored.items():
        distances = []
        for a, b in zip(firsts, seconds, strict=True):
            x, y = first(a), second(b)
            distances.append(float("inf") if x is None or y is None else metric(x, y))
        results[name] = fold_accuracy(np.array(distances), same, fold_of)
    reference = results["shipped"]
    shipped_ms = costs["shipped"]
    cost_of = {name: ms / shipped_ms for name, ms in costs.items()}
    for name in ("flip-mean", "flip-unit", "flip-cosine"):  # flip-one-side: paid on one side
        cost_of[name] = costs["flip"] / shipped_ms
    cost_of["cosine"] = 1.0
    for enrol, stored in ENROL_SIDE.items():  # paid once per enrolment photo, not per frame
        if stored in costs:
            cost_of[enrol] = costs[stored] / shipped_ms
    figures: dict = {
        "shipped_embedding_ms": shipped_ms,
        "cost_faces": len(paths[:: max(1, len(paths) // args.cost_faces)]),
        "mean_norm": unit,
        "levers": {},
    }
    print(
        f"{'lever':<16}{'accuracy':>10}{'SE':>8}{'errors':>8}{'gain':>9}{'paired SE':>11}"
        f"{'won/lost':>10}{'cost':>7}"
    )
    for name, result in results.items():
        diff = result["per_fold"] - reference["per_fold"]
        paired_se = float(np.std(diff, ddof=1) / np.sqrt(folds))
        won = int((result["right"] & ~reference["right"]).sum())
        lost = int((~result["right"] & reference["right"]).sum())
        cost = cost_of.get(name)
        row = {
            "accuracy": result["accuracy"],
            "se": result["se"],
            "errors": result["errors"],
            "threshold": result["threshold"],
            "gain": result["accuracy"] - reference["accuracy"],
            "paired_se": paired_se,
            "won": won,
            "lost": lost,
            "cost_ratio": cost,
            # enrol-jitter*: paid once per enrolment photo; a camera face costs 1.00x.
            "cost_paid_at": "enrolment" if name in ENROL_SIDE else "every face",
            "missed_pairs": result["missed_pairs"],
        }
        figures["levers"][name] = row
        print(
            f"{name:<16}{row['accuracy']:>10.4f}{row['se']:>8.4f}{row['errors']:>8}"
            f"{row['gain']:>+9.4f}{paired_se:>11.4f}{f'{won}/{lost}':>10}"
            f"{'' if cost is None else f'{cost:.2f}x':>7}"
        )
    print(
        f"cost: the embedding step (chip and network) of {figures['cost_faces']} faces, "
        f"shipped {shipped_ms:.1f} ms median; ratios to it, timed in turn in this run "
        "(enrol-jitter*: per enrolment photo; the camera's side stays 1.00x)"
    )
    print_json(figures, 4)


if __name__ == "__main__":
    main()
