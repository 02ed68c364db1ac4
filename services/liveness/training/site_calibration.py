"""Per-site calibration of the passive check from the site's own real traffic, measured
leave-one-source-out (LOSO), per presentation.

    .venv/bin/python -m services.liveness.training.site_calibration [--data ../shared/data]
        [--repeats 20] [--targets 0.05] [--sizes 5 10 20 50]

A deployed camera sees mostly real people, and Watchpost knows some of them are real (they
blinked). So a site can fit its own threshold from the passive scores of its real presentations
only, for a target BPCER; attack labels are never used. This script measures whether that pays:

* the shipped configuration of `passive.py` is trained on five folds and scores the sixth
  (the held-out fold's labels choose nothing);
* inside the held-out fold every *site* (one source: one camera set-up; the `small` fold's seven
  one-person sources and the celeba/vendor folds' two parts are separate sites) is split at
  random by **calibration unit** (a NUAA subject, a CelebA subject / ReynaraEzra image number, a
  vendor person or video id; in the single-video sources, whose frames are of one or a few people
  with no finer grouping, the run of RUN frames that is a presentation) into a calibration part
  and a test part. Calibration units are drawn until `n` real presentations are in hand, but never
  more than half of the site's real units: a site that cannot spare `n` keeps the model's global
  threshold ("fallback", as the service does below its minimum). Only the calibration part's
  real presentations are used; its attacks are dropped, and the test part never overlaps it;
* methods on the test part:
  - `global`: the model's threshold (minimax of an inner LOSO on the five training folds);
  - `quantile@b`: the service's rule, `calibration.fit_threshold`: the order statistic of the
    calibration reals' scores that a new real presentation reaches with chance at most b (it
    needs 1 / b - 1 of them: 19 at 5%, 9 at 10%; with fewer the site keeps the global one);
  - `shift`: the threshold moved with the site's real scores, sigmoid(median logit of the
    calibration reals + delta), delta chosen on the five training folds only (each training
    site shifted by the median logit of its own inner out-of-fold real scores, delta = minimax
    over the training folds of their ACER);
* repeated `--repeats` times with different random splits; per fold the mean and spread of
  APCER, BPCER and ACER of the pooled test presentations of its sites.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from services.liveness.calibration import fit_threshold, needed_presentations
from services.liveness.training import loso
from services.liveness.training.pad_data import FOLDS, fold_samples
from services.liveness.training.passive import (
    CONFIGS,
    _masked,
    _take,
    choose_threshold,
    feature_tables,
    fit,
)
from watchpost.settings import default_data_dir

console = Console(width=170)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return float(1 / (1 + np.exp(-z)))


def site_threshold(real_scores, target_bpcer: float, global_threshold: float) -> float:
    """The service's rule (`services.liveness.calibration.fit_threshold`): at most
    `target_bpcer` of the site's real presentations reach it; the global threshold when the
    calibration part has fewer presentations than that rule needs (as the service's minimum)."""
    if len(real_scores) < needed_presentations(target_bpcer):
        return global_threshold
    return fit_threshold(list(real_scores), target_bpcer)


def calibration_unit(item) -> str:
    """What is kept on one side of a calibration/test split inside a site."""
    if item.fold == "nuaa":
        return f"subject {item.subject}"
    if item.source.startswith("JonathanSuryaS/"):
        return item.presentation.split(":", 2)[2]  # the group_hint: subject, person or video
    if item.source == "ReynaraEzra":
        return Path(item.path).stem  # live N and spoof N may be the same celebrity
    return item.presentation  # a run of frames of the one video the source is


@dataclass
class Site:
    name: str
    fold: str
    scores: np.ndarray  # per presentation
    labels: np.ndarray
    units: np.ndarray


def presentation_sites(scores, samples, rows) -> list[Site]:
    """The presentations of `rows` (mean frame score), grouped into sites (one per source)."""
    per: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, str, int, str]] = {}
    for score, index in zip(scores, rows, strict=True):
        item = samples[index].item
        per[item.presentation].append(float(score))
        meta[item.presentation] = (item.source, item.fold, item.label, calibration_unit(item))
    by_site: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    folds = {}
    for presentation, frame_scores in per.items():
        source, fold, label, unit = meta[presentation]
        by_site[source].append((float(np.mean(frame_scores)), label, unit))
        folds[source] = fold
    return [
        Site(
            name,
            folds[name],
            np.array([r[0] for r in rows_]),
            np.array([r[1] for r in rows_]),
            np.array([r[2] for r in rows_]),
        )
        for name, rows_ in sorted(by_site.items())
    ]


def split_site(
    site: Site, n: int, rng: np.random.Generator
) -> tuple[np.ndarray | None, np.ndarray]:
    """(calibration real scores or None when the site cannot spare `n`, test mask)."""
    real_units = np.unique(site.units[site.labels == 0])
    order = rng.permutation(real_units)
    cap = len(real_units) // 2
    chosen: list[str] = []
    count = 0
    for unit in order[:cap]:
        chosen.append(unit)
        count += int(((site.units == unit) & (site.labels == 0)).sum())
        if count >= n:
            break
    in_cal = np.isin(site.units, chosen)
    if count < n:
        # Not enough: the site keeps the global threshold; test on a part of the same size as
        # if it had calibrated (the same units left out), so the figures compare.
        return None, ~in_cal
    return site.scores[in_cal & (site.labels == 0)], ~in_cal


def shift_delta(sites: list[Site]) -> float:
    """Delta of the `shift` method: minimax over the sites' folds of ACER, each site's scores
    taken relative to the median logit of its own real presentations."""
    z, labels, folds = [], [], []
    for site in sites:
        reals = site.scores[site.labels == 0]
        if reals.size == 0:
            continue
        z.append(logit(site.scores) - np.median(logit(reals)))
        labels.append(site.labels)
        folds.append(np.full(site.scores.size, site.fold))
    return loso.minimax_threshold(np.concatenate(z), np.concatenate(labels), np.concatenate(folds))


def evaluate(sites, global_threshold, delta, targets, sizes, repeats, seed=0) -> dict:
    """Per method and calibration size: mean and standard deviation over random splits of the
    held-out fold's pooled test-part APCER, BPCER and ACER, and the share of test presentations
    whose site fell back to the global threshold."""
    methods = ["global", "shift"] + [f"quantile@{b:g}" for b in targets]
    out: dict = {}
    for n in sizes:
        rng = np.random.default_rng(seed + n)
        runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
        fallback_share = []
        for _ in range(repeats):
            pooled: dict[str, tuple[list, list]] = {m: ([], []) for m in methods}
            fell_back = total = 0
            for site in sites:
                calibration, test = split_site(site, n, rng)
                scores, labels = site.scores[test], site.labels[test]
                total += scores.size
                for method in methods:
                    if calibration is None or method == "global":
                        threshold = global_threshold
                    elif method == "shift":
                        threshold = sigmoid(float(np.median(logit(calibration))) + delta)
                    else:
                        target = float(method.split("@")[1])
                        threshold = site_threshold(calibration, target, global_threshold)
                    pooled[method][0].append(scores >= threshold)
                    pooled[method][1].append(labels)
                if calibration is None:
                    fell_back += scores.size
            fallback_share.append(fell_back / max(total, 1))
            for method in methods:
                flags = np.concatenate(pooled[method][0])
                labels = np.concatenate(pooled[method][1])
                apcer = float(np.mean(~flags[labels == 1])) if (labels == 1).any() else np.nan
                bpcer = float(np.mean(flags[labels == 0])) if (labels == 0).any() else np.nan
                runs[method].append((apcer, bpcer, (apcer + bpcer) / 2))
        out[str(n)] = {
            "fallback_share": round(float(np.mean(fallback_share)), 3),
            **{
                method: {
                    name: {
                        "mean": round(float(np.nanmean(values)), 4),
                        "std": round(float(np.nanstd(values)), 4),
                    }
                    for name, values in zip(
                        ("apcer", "bpcer", "acer"), zip(*runs[method], strict=True), strict=True
                    )
                }
                for method in methods
            },
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.05])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 50])
    args = parser.parse_args(argv)
    started = time.time()

    config = next(c for c in CONFIGS if c.name.startswith("F:"))
    samples, y, units, presentations = fold_samples(
        args.data, progress=lambda it: track(it, "crops")
    )
    tables = feature_tables(samples, (config.augment,))
    x, augmented = tables["plain"], tables[config.augment]

    results: dict[str, dict[str, Any]] = {}
    sites_seen: dict[str, Any] = {}
    for held_name in track(FOLDS, description="held-out folds"):
        held = units == held_name
        train = ~held
        model = fit(x[train], y[train], units[train], config, _take(augmented, train))
        # Inner LOSO on the five training folds: out-of-fold scores for the global threshold
        # and for the shift's delta. The held-out fold is not touched.
        inner = np.zeros(y.size)
        for other in FOLDS:
            if other == held_name:
                continue
            part = units == other
            keep = train & ~part
            inner_model = fit(x[keep], y[keep], units[keep], config, _take(augmented, keep))
            inner[part] = _masked(inner_model, x[part])
        global_threshold = choose_threshold(
            inner[train], y[train], units[train], presentations[train], config.rule
        )
        train_rows = np.flatnonzero(train)
        delta = shift_delta(presentation_sites(inner[train], samples, train_rows))
        held_rows = np.flatnonzero(held)
        sites = presentation_sites(_masked(model, x[held]), samples, held_rows)
        sites_seen[held_name] = {
            s.name: {
                "real": int((s.labels == 0).sum()),
                "attack": int((s.labels == 1).sum()),
                "real_units": int(np.unique(s.units[s.labels == 0]).size),
            }
            for s in sites
        }
        results[held_name] = {
            "global_threshold": round(global_threshold, 4),
            "delta": round(delta, 4),
            "by_size": evaluate(
                sites, global_threshold, delta, args.targets, args.sizes, args.repeats
            ),
        }

    methods = ["global", "shift"] + [f"quantile@{b:g}" for b in args.targets]
    headline: dict[str, dict[str, Any]] = {}
    for n in args.sizes:
        table = Table(
            title=f"held-out fold test parts, calibration from {n} real presentations "
            f"per site ({args.repeats} random splits; mean +- sd)"
        )
        table.add_column("fold")
        table.add_column("fallback")
        for method in methods:
            table.add_column(f"{method} APCER/BPCER/ACER", justify="right")
        for fold, r in results.items():
            by = r["by_size"][str(n)]
            table.add_row(
                fold,
                f"{100 * by['fallback_share']:.0f}%",
                *(
                    " / ".join(f"{100 * by[m][k]['mean']:.1f}" for k in ("apcer", "bpcer"))
                    + f" / {100 * by[m]['acer']['mean']:.1f}+-{100 * by[m]['acer']['std']:.1f}"
                    for m in methods
                ),
            )
        console.print(table)
        headline[str(n)] = {}
        for method in methods:
            acers = {f: r["by_size"][str(n)][method]["acer"]["mean"] for f, r in results.items()}
            bpcers = {f: r["by_size"][str(n)][method]["bpcer"]["mean"] for f, r in results.items()}
            worst = max(acers, key=lambda fold: acers[fold])
            headline[str(n)][method] = {
                "median_acer": round(float(np.median(list(acers.values()))), 4),
                "worst_acer": acers[worst],
                "worst_fold": worst,
                "worst_bpcer": max(bpcers.values()),
            }
            line = headline[str(n)][method]
            console.print(
                f"  n={n} {method}: median ACER {100 * line['median_acer']:.1f}%, "
                f"worst {100 * acers[worst]:.1f}% ({worst}), worst fold BPCER "
                f"{100 * max(bpcers.values()):.1f}%"
            )
    console.print(f"sites: {json.dumps(sites_seen)}")
    result = {
        "benchmark": "passive_site_calibration",
        "configuration": config.name,
        "repeats": args.repeats,
        "headline": headline,
        "folds": results,
        "sites": sites_seen,
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
