"""The landmark-parallax cue per presentation: its level chosen on some NUAA subjects, measured
on the other subjects and on the shared videos.

    .venv/bin/python -m benchmarks.pad_evaluation --shared nuaa \
        --passive-model .watchpost/cache/passive_without_nuaa.json \
        --save-evidence .watchpost/cache/pad_evidence_nuaa.pkl
    .venv/bin/python -m benchmarks.pad_evaluation --shared videos \
        --passive-model .watchpost/cache/passive_without_small.json \
        --save-evidence .watchpost/cache/pad_evidence_videos.pkl
    .venv/bin/python -m benchmarks.parallax --evidence .watchpost/cache/pad_evidence_*.pkl \
        [--tune 0001 0002 0003 0004 0005]

The presentations and their landmarks are pad_evaluation's: NUAA sessions as 10 fps sequences in
picture order, the shared videos and the lestari15 real/replay pair at their own rate (frames
over 1280 px scaled down), the largest face per frame, its 68 landmarks fitted as the liveness
reader fits them, pairs about 0.3 s apart (`services.liveness.parallax`). Per presentation: its
pooled flatness over all its pairs (a burst's reading) and the highest running flatness a camera
stream would have seen (pooled over the newest 120 pairs after each pair, once `--min-pairs`
pairs moved beyond landmark noise: the stream judges every frame and latches a spoof).

The threshold is chosen on the tuning subjects' NUAA sessions only: halfway between the highest
running flatness of a real session and the lowest final flatness of a print session above it.
Reported per group (tuning subjects, held-out subjects, shared videos): prints not flagged,
real flagged (final and running). The cost of one pair against dlib's landmark fit of one face
(which the blink reader pays anyway), timed in the same run. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.pad_evaluation import load_reads, subject_of
from services.liveness.eyes import face_landmarks
from services.liveness.parallax import MIN_RESIDUAL, ParallaxSample, parallax, pooled_flatness
from watchpost.images import load_rgb, to_grey
from watchpost.settings import default_data_dir
from watchpost.vision.faces import detect_faces

KEEP = 120  # pairs a camera track pools (ParallaxTally.keep)


def reading(samples: list[ParallaxSample], min_pairs: int) -> dict:
    running = []
    for end in range(1, len(samples) + 1):
        window = samples[max(0, end - KEEP) : end]
        if sum(s.residual >= MIN_RESIDUAL for s in window) >= min_pairs:
            running.append(pooled_flatness(window))
    residuals = [s.residual for s in samples]
    return {
        "pairs": len(samples),
        "moving": sum(s.residual >= MIN_RESIDUAL for s in samples),
        "flatness": round(pooled_flatness(samples), 4),
        "highest_running": round(max(running), 4) if running else None,
        "median_residual": round(float(np.median(residuals)), 4) if residuals else None,
    }


def choose_threshold(rows: list[dict], min_pairs: int) -> tuple[float, dict]:
    real = [r["highest_running"] or 0.0 for r in rows if r["kind"] == "real"]
    prints = sorted(
        r["flatness"] for r in rows if r["kind"] == "print" and r["moving"] >= min_pairs
    )
    top_real = max(real, default=0.0)
    above = [f for f in prints if f > top_real]
    threshold = (top_real + above[0]) / 2 if above else top_real + 0.05
    return round(threshold, 3), {"highest_real_running": top_real, "lowest_print_above": above[:1]}


def figures(rows: list[dict], threshold: float, min_pairs: int) -> dict:
    def flagged(r: dict, score: float | None) -> bool:
        return r["moving"] >= min_pairs and score is not None and score >= threshold

    attacks = [r for r in rows if r["kind"] != "real"]
    real = [r for r in rows if r["kind"] == "real"]
    out: dict = {"presentations": len(rows)}
    for kind in sorted({r["kind"] for r in attacks}):
        mine = [r for r in attacks if r["kind"] == kind]
        out[f"{kind}_not_flagged"] = round(
            float(np.mean([not flagged(r, r["flatness"]) for r in mine])), 4
        )
        out[f"{kind}_n"] = len(mine)
    if real:
        out["real_n"] = len(real)
        out["real_flagged"] = round(float(np.mean([flagged(r, r["flatness"]) for r in real])), 4)
        out["real_flagged_running"] = round(
            float(np.mean([flagged(r, r["highest_running"]) for r in real])), 4
        )
    return out


def cost() -> dict:
    """ms per pair of the parallax fit, against ms per face of dlib's landmark fit (reference),
    on a real photo and a slightly moved copy of its landmarks."""
    rgb = load_rgb(default_data_dir() / "faces/test/obama1.jpg")
    grey = to_grey(rgb)
    (box,) = detect_faces(rgb, upsample=1)[:1]
    fits = []
    for _ in range(30):
        start = time.perf_counter()
        points = face_landmarks(grey, box)
        fits.append((time.perf_counter() - start) * 1000)
    moved = points @ np.array([[0.97, 0.03], [0.0, 1.0]], np.float32).T + 2
    start = time.perf_counter()
    for _ in range(1000):
        parallax(points, moved)
    per_pair = time.perf_counter() - start  # seconds for 1000 pairs = ms per pair
    landmarks_ms = float(np.median(fits))
    return {
        "parallax_ms_per_pair": round(per_pair, 4),
        "landmarks_ms_per_face": round(landmarks_ms, 3),
        "ratio_to_landmarks": round(per_pair / landmarks_ms, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=Path, nargs="+", required=True)
    parser.add_argument("--tune", nargs="+", default=["0001", "0002", "0003", "0004", "0005"])
    parser.add_argument("--min-pairs", type=int, default=5)
    args = parser.parse_args()
    reads = load_reads(args.evidence)
    rows = []
    for read in reads:
        subject = subject_of(read.name)
        group = "videos" if subject is None else ("tune" if subject in args.tune else "held-out")
        row = {"name": read.name, "kind": read.kind, "group": group}
        rows.append(row | reading(read.evidence.parallax.samples, args.min_pairs))
    tune = [r for r in rows if r["group"] == "tune"]
    threshold, basis = choose_threshold(tune, args.min_pairs)
    print(f"threshold {threshold} chosen on subjects {' '.join(args.tune)}: {basis}")
    print(
        f"{'group':<9} {'kind':<7} {'presentation':<28} {'pairs':>5} {'moved':>5} "
        f"{'flat':>6} {'run max':>7} {'resid':>6}  flagged"
    )
    for r in rows:
        run = "-" if r["highest_running"] is None else f"{r['highest_running']:.3f}"
        flag = r["moving"] >= args.min_pairs and r["flatness"] >= threshold
        print(
            f"{r['group']:<9} {r['kind']:<7} {r['name']:<28} {r['pairs']:>5} {r['moving']:>5} "
            f"{r['flatness']:>6.3f} {run:>7} {r['median_residual'] or 0:>6.3f}  "
            f"{'FLAT' if flag else ''}"
        )
    result: dict = {
        "benchmark": "parallax",
        "tune_subjects": args.tune,
        "threshold": threshold,
        "min_pairs": args.min_pairs,
        "min_residual": MIN_RESIDUAL,
        "threshold_basis": basis,
    }
    for group in ("tune", "held-out", "videos"):
        result[group] = figures([r for r in rows if r["group"] == group], threshold, args.min_pairs)
        print(group, result[group])
    result["cost"] = cost()
    print("cost", result["cost"])
    result["per_presentation"] = {
        r["name"]: [r["flatness"], r["highest_running"], r["moving"]] for r in rows
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
