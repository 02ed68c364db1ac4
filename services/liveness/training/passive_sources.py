"""Experiment: which sources the LR passive model trains on, chosen by nested LOSO.

    .venv/bin/python -m services.liveness.training.passive_sources [--data ../shared/data]

Configuration F of passive.py (the shipped recipe) with some training folds left out of every
fit (they are still held out and scored in the inner leave-one-fold-out, so each configuration
is judged on all five training folds). Candidates, fixed before any fold was looked at, each a
source with a known shortcut (the data README): none left out (F); celeba ("real" are web
photos); small (real and replay crops differ in size and cast); both. For each held-out fold the
candidate with the lowest median + worst inner-LOSO presentation ACER is taken (nested, as
passive.py does); its held-out figures are reported, with every candidate's. Features: the cache
passive_cnn.py writes (.watchpost/cache/passive_features_v1.npz). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from services.liveness import texture
from services.liveness.training import loso
from services.liveness.training.pad_data import FOLDS, fold_samples
from services.liveness.training.passive import choose_threshold, fit, inner_key
from services.liveness.training.passive_cnn import LR_CONFIG, cached_feature_tables
from watchpost.progress import track
from watchpost.settings import default_data_dir

CANDIDATES = {
    "F": (),
    "F-celeba": ("celeba",),
    "F-small": ("small",),
    "F-both": ("celeba", "small"),
}


def fit_without(x, y, units, augmented, dropped):
    keep = ~np.isin(units, dropped)
    return fit(x[keep], y[keep], units[keep], LR_CONFIG, augmented[keep])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args(argv)
    samples, y, units, pres = fold_samples(args.data)
    tables = cached_feature_tables(samples)
    x, aug = tables["plain"], tables["camera"]
    mask = texture.group_mask(LR_CONFIG.groups)
    held_out: dict[str, dict] = {}
    for name, dropped in track(list(CANDIDATES.items()), "candidates"):
        held_out[name] = {}
        for fold in FOLDS:
            train = units != fold
            xt, yt, ut, pt, at = x[train], y[train], units[train], pres[train], aug[train]
            inner = np.zeros(yt.size)
            for unit in np.unique(ut):
                h = ut == unit
                model = fit_without(xt[~h], yt[~h], ut[~h], at[~h], dropped)
                inner[h] = model.scores_from_features(xt[h][:, mask])
            threshold = choose_threshold(inner, yt, ut, pt, LR_CONFIG.rule)
            model = fit_without(xt, yt, ut, at, dropped)
            held = units == fold
            scores = model.scores_from_features(x[held][:, mask])
            p_scores, p_labels, _ = loso.by_presentation(scores, y[held], pres[held])
            held_out[name][fold] = {
                "key": inner_key(inner, yt, ut, pt, threshold),
                **loso.summary(p_scores, p_labels, threshold),
            }
        acers = [held_out[name][f]["acer"] for f in FOLDS]
        print(
            f"{name}: "
            + " ".join(f"{f} {100 * a:.1f}" for f, a in zip(FOLDS, acers, strict=True))
            + f" | median {100 * np.median(acers):.1f} worst {100 * max(acers):.1f}",
            flush=True,
        )
    choice = {f: min(CANDIDATES, key=lambda n: held_out[n][f]["key"]) for f in FOLDS}
    nested = {f: held_out[choice[f]][f]["acer"] for f in FOLDS}
    print("nested choice", choice)
    print(
        "nested "
        + " ".join(f"{f} {100 * a:.1f}" for f, a in nested.items())
        + f" | median {100 * np.median(list(nested.values())):.1f} "
        f"worst {100 * max(nested.values()):.1f}"
    )
    result = {
        "benchmark": "passive_sources_nested",
        "candidates": {
            n: {f: {k: round(v, 4) for k, v in r.items()} for f, r in folds.items()}
            for n, folds in held_out.items()
        },
        "nested_choice": choice,
        "nested_acer": {f: round(a, 4) for f, a in nested.items()},
        "nested_median": round(float(np.median(list(nested.values()))), 4),
        "nested_worst": round(float(max(nested.values())), 4),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
