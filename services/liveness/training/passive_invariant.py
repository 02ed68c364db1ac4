"""Experiment: source-invariant feature selection for the LR passive model, chosen by nested LOSO.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python -m services.liveness.training.passive_invariant \
        --data ../shared/data

Hypothesis (domain generalisation): some texture features separate attack from bona fide in the
same direction in every source, others mostly encode the camera or source (shortcuts); a model
on the first kind only should transfer better to an unseen source.

Everything below uses the training folds of a held-out fold only, and is redone inside the inner
leave-one-fold-out (the selection is part of the training recipe, so an inner fit on four folds
selects on those four). Per feature (the 196 of configuration F: spectrum, quality, lbp,
lbp_scales) and per training fold, Cohen's d = (attack mean - bona fide mean) / pooled sd, over
the presentations of that fold (each presentation the mean of its plain crops' features). d does
not change under the per-feature standardisation `fit` applies, so it is computed on the raw
features. Candidates, all fixed before any held-out result was looked at:

* **F**: no selection (the shipped recipe, the baseline).
* **S-strict**: keep a feature if d has the same sign in every training fold and |d| >= 0.2 in
  each.
* **S-sign**: keep a feature if d has the same sign in every training fold (no size floor).
* **S-ratio**: keep a feature if |mean d| / sd(d) >= 1 over the training folds (sd with ddof 1)
  and |mean d| >= 0.2.
* (each S rule: if fewer than MIN_KEEP features pass, the MIN_KEEP with the highest
  sign-consistent minimum, min_f d_f * sign(mean d), are kept.)
* **DRO**: all F features, group-DRO style reweighting over the (training fold, class) groups:
  start from F's weights (each group the same total), fit, then DRO_ROUNDS times multiply each
  group's share by exp(DRO_ETA * its mean log-loss on its training rows) and refit; the last fit
  is the model. The hardest source/class (e.g. a soft webcam's bona fide) gets more weight.

Each candidate is configuration F otherwise: passive.py's `fit` (camera-augmented copies, each
(fold, class) the same weight, C = 0.001; a dropped feature is fitted as a constant zero column,
whose L2 coefficient stays exactly 0, i.e. the same as leaving it out), threshold by minimax on
the inner leave-one-fold-out presentation scores (`choose_threshold`). Nested choice per held-out
fold: the candidate with the lowest `inner_key` (median + worst inner ACER at its inner
threshold), ties to the earlier one in the list; reported twice: among the three S rules only (the
feature-selection experiment), and among all five. Held-out errors are per presentation
(ISO/IEC 30107-3). Features: the cache passive_cnn.py / passive_sources.py write
(.watchpost/cache/passive_features_v1.npz), computed here if missing. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from services.liveness import texture
from services.liveness.passive_model import PassiveModel
from services.liveness.training import loso
from services.liveness.training.pad_data import FOLDS, fold_samples
from services.liveness.training.passive import (
    _weights,
    choose_threshold,
    fit,
    fitted_model,
    inner_key,
)
from services.liveness.training.passive_cnn import LR_CONFIG, cached_feature_tables
from watchpost.progress import track
from watchpost.settings import default_data_dir

MIN_KEEP = 5
D_FLOOR = 0.2
RATIO = 1.0
DRO_ROUNDS = 5
DRO_ETA = 2.0
SELECTION_RULES = ("S-strict", "S-sign", "S-ratio")
CANDIDATES = ("F", *SELECTION_RULES, "DRO")
F_MASK = texture.group_mask(LR_CONFIG.groups)  # over all features


def column_names() -> list[str]:
    """A name per F column: group (lbp_scales split into lbp128 and lbp32), channel, index."""
    names = []
    channels = ("Y", "Cr", "Cb", "H", "S", "V")
    for group in LR_CONFIG.groups:
        if group in ("spectrum", "quality"):
            names += [f"{group}:{i}" for i in range(texture.GROUPS[group])]
            continue
        scales = ("lbp64",) if group == "lbp" else ("lbp128", "lbp32")
        for scale in scales:
            names += [f"{scale}:{c}:{b}" for c in channels for b in range(10)]
    assert len(names) == int(F_MASK.sum())
    return names


NAMES = column_names()


def effect_sizes(x, y, units, pres) -> np.ndarray:
    """(folds, F features) Cohen's d per training fold over per-presentation mean features."""
    rows = x[:, F_MASK]
    out = []
    for unit in np.unique(units):
        held = units == unit
        names, inverse = np.unique(pres[held], return_inverse=True)
        counts = np.bincount(inverse, minlength=names.size)
        means = (
            np.stack(
                [np.bincount(inverse, weights=col, minlength=names.size) for col in rows[held].T],
                axis=1,
            )
            / counts[:, None]
        )
        labels = np.zeros(names.size, dtype=int)
        labels[inverse] = y[held]
        a, b = means[labels == 1], means[labels == 0]
        pooled = np.sqrt(
            ((a.shape[0] - 1) * a.var(axis=0, ddof=1) + (b.shape[0] - 1) * b.var(axis=0, ddof=1))
            / (a.shape[0] + b.shape[0] - 2)
        )
        diff = a.mean(axis=0) - b.mean(axis=0)
        out.append(np.where(pooled > 1e-12, diff / np.maximum(pooled, 1e-12), 0.0))
    return np.array(out)


def select(d: np.ndarray, rule: str) -> np.ndarray:
    """Boolean mask over the F features kept by `rule` from the (folds, features) d table."""
    sign = np.sign(d.mean(axis=0))
    consistent = (d * sign).min(axis=0)  # > 0 iff the same sign in every fold
    if rule == "S-strict":
        keep = consistent >= D_FLOOR
    elif rule == "S-sign":
        keep = consistent > 0
    elif rule == "S-ratio":
        mean = np.abs(d.mean(axis=0))
        keep = (mean / (d.std(axis=0, ddof=1) + 1e-12) >= RATIO) & (mean >= D_FLOOR)
    else:
        raise ValueError(rule)
    if keep.sum() < MIN_KEEP:
        keep = np.zeros(d.shape[1], dtype=bool)
        keep[np.argsort(-consistent)[:MIN_KEEP]] = True
    return keep


def _zeroed(table: np.ndarray, keep: np.ndarray) -> np.ndarray:
    full = np.zeros(F_MASK.size, dtype=bool)
    full[np.flatnonzero(F_MASK)[keep]] = True
    out = table.copy()
    out[..., ~full] = 0.0
    return out


def fit_dro(x, y, units, augmented) -> PassiveModel:
    """F's fit with group-DRO reweighting over (unit, class) groups (module docstring)."""
    rows = np.concatenate([x[:, F_MASK], augmented[:, :, F_MASK].reshape(-1, F_MASK.sum())])
    copies = augmented.shape[1]
    labels = np.concatenate([y, np.repeat(y, copies)])
    groups = np.concatenate([units, np.repeat(units, copies)])
    base = _weights(groups, labels, True)
    keys = np.array([f"{g}:{label}" for g, label in zip(groups, labels, strict=True)])
    names, index = np.unique(keys, return_inverse=True)
    share = np.full(names.size, 1.0 / names.size)
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0) + 1e-6
    z = (rows - mean) / scale
    lr = LogisticRegression(C=LR_CONFIG.c, max_iter=5000)
    for round_ in range(DRO_ROUNDS + 1):
        weights = base * names.size * share[index]
        lr.fit(z, labels, sample_weight=weights * labels.size / weights.sum())
        if round_ == DRO_ROUNDS:
            break
        p = np.clip(lr.predict_proba(z)[:, 1], 1e-9, 1 - 1e-9)
        loss = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        group_loss = np.bincount(index, weights=loss) / np.bincount(index)
        share = share * np.exp(DRO_ETA * group_loss)
        share /= share.sum()
    return fitted_model(LR_CONFIG, mean, scale, lr)


def train(name: str, x, y, units, pres, augmented) -> tuple[PassiveModel, np.ndarray]:
    """The candidate's model on these rows, and its kept-feature mask over the F features."""
    every = np.ones(int(F_MASK.sum()), dtype=bool)
    if name == "F":
        return fit(x, y, units, LR_CONFIG, augmented), every
    if name == "DRO":
        return fit_dro(x, y, units, augmented), every
    keep = select(effect_sizes(x, y, units, pres), name)
    model = fit(_zeroed(x, keep), y, units, LR_CONFIG, _zeroed(augmented, keep))
    return model, keep


def score(model: PassiveModel, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return model.scores_from_features(_zeroed(x, keep)[:, F_MASK])


def group_counts(keep: np.ndarray) -> dict[str, int]:
    counts = Counter(name.split(":")[0] for name, k in zip(NAMES, keep, strict=True) if k)
    return dict(counts)


def run_fold(name, fold, x, y, units, pres, aug) -> dict:
    train_rows = units != fold
    xt, yt, ut = x[train_rows], y[train_rows], units[train_rows]
    pt, at = pres[train_rows], aug[train_rows]
    inner = np.zeros(yt.size)
    inner_kept = []
    for unit in np.unique(ut):
        h = ut == unit
        model, keep = train(name, xt[~h], yt[~h], ut[~h], pt[~h], at[~h])
        inner[h] = score(model, xt[h], keep)
        inner_kept.append(int(keep.sum()))
    threshold = choose_threshold(inner, yt, ut, pt, LR_CONFIG.rule)
    model, keep = train(name, xt, yt, ut, pt, at)
    held = units == fold
    p_scores, p_labels, _ = loso.by_presentation(score(model, x[held], keep), y[held], pres[held])
    kept_names = [n for n, k in zip(NAMES, keep, strict=True) if k]
    return {
        "key": inner_key(inner, yt, ut, pt, threshold),
        "threshold": threshold,
        **loso.summary(p_scores, p_labels, threshold),
        "kept": int(keep.sum()),
        "kept_groups": group_counts(keep),
        "inner_kept": inner_kept,
        "kept_names": kept_names if len(kept_names) < 40 else [],
    }


def line(label: str, acers: dict[str, float]) -> str:
    values = list(acers.values())
    return (
        f"{label:>16}: "
        + " ".join(f"{f} {100 * a:5.1f}" for f, a in acers.items())
        + f" | median {100 * np.median(values):.1f} worst {100 * max(values):.1f}"
    )


def nested(held_out: dict, names: tuple[str, ...]) -> tuple[dict, dict]:
    choice = {f: min(names, key=lambda n: held_out[n][f]["key"]) for f in FOLDS}
    return choice, {f: held_out[choice[f]][f] for f in FOLDS}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args(argv)
    started = time.time()
    samples, y, units, pres = fold_samples(args.data)
    tables = cached_feature_tables(samples)
    x, aug = tables["plain"], tables["camera"]

    held_out: dict[str, dict[str, dict]] = {n: {} for n in CANDIDATES}
    jobs = [(n, f) for n in CANDIDATES for f in FOLDS]
    for name, fold in track(jobs, "candidate x held-out fold"):
        held_out[name][fold] = run_fold(name, fold, x, y, units, pres, aug)

    print("per presentation, held-out fold: APCER / BPCER / ACER / AUC (%, AUC x100)")
    for name in CANDIDATES:
        print(line(name, {f: held_out[name][f]["acer"] for f in FOLDS}))
        for f in FOLDS:
            r = held_out[name][f]
            print(
                f"    {f:>9} APCER {100 * r['apcer']:5.1f} BPCER {100 * r['bpcer']:5.1f} "
                f"ACER {100 * r['acer']:5.1f} AUC {100 * r['auc']:5.1f} key {r['key']:.3f} "
                f"kept {r['kept']} {r['kept_groups']}"
            )
            if r["kept_names"]:
                print(f"{'':>14}{' '.join(r['kept_names'])}")
    results = {}
    for label, names in (("nested-S", SELECTION_RULES), ("nested-all", CANDIDATES)):
        choice, figures = nested(held_out, names)
        print(label, "choice", choice)
        print(line(label, {f: r["acer"] for f, r in figures.items()}))
        acers = [r["acer"] for r in figures.values()]
        results[label] = {
            "choice": choice,
            "folds": {
                f: {k: round(r[k], 4) for k in ("apcer", "bpcer", "acer", "auc")}
                for f, r in figures.items()
            },
            "median": round(float(np.median(acers)), 4),
            "worst": round(float(max(acers)), 4),
        }
    result = {
        "benchmark": "passive_invariant_nested",
        "wall_s": round(time.time() - started, 1),
        "candidates": {
            n: {
                f: {
                    k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in r.items()
                    if k != "kept_names"
                }
                for f, r in folds.items()
            }
            for n, folds in held_out.items()
        },
        **results,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
