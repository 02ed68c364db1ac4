"""Error rates of a presentation-attack detector, in ISO/IEC 30107-3 terms. Pure NumPy.

Scores are P(attack): higher means more likely an attack. Labels: 1 = attack presentation,
0 = bona fide. At a threshold t a sample is called an attack when its score >= t, so

* APCER = share of attacks with score < t (attacks let through),
* BPCER = share of bona fide with score >= t (real people refused),
* ACER = (APCER + BPCER) / 2.

APCER here pools every attack type of a fold (the standard takes the worst type; the folds'
attack types are not recorded per image everywhere, see the model card).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Rates:
    apcer: float
    bpcer: float
    acer: float
    attacks: int
    bona_fide: int

    def as_dict(self) -> dict:
        return asdict(self)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (bona fide) or 1 (attack)")
    return scores, labels.astype(int)


def error_rates(scores, labels, threshold: float) -> Rates:
    scores, labels = _check(scores, labels)
    attacks, bona = scores[labels == 1], scores[labels == 0]
    apcer = float(np.mean(attacks < threshold)) if attacks.size else float("nan")
    bpcer = float(np.mean(bona >= threshold)) if bona.size else float("nan")
    return Rates(apcer, bpcer, (apcer + bpcer) / 2, int(attacks.size), int(bona.size))


def auc(scores, labels) -> float:
    """Area under the ROC: the chance an attack scores above a bona fide (ties count half)."""
    scores, labels = _check(scores, labels)
    attacks, bona = scores[labels == 1], scores[labels == 0]
    if not attacks.size or not bona.size:
        return float("nan")
    greater = (attacks[:, None] > bona[None, :]).sum()
    ties = (attacks[:, None] == bona[None, :]).sum()
    return float((greater + 0.5 * ties) / (attacks.size * bona.size))


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Every threshold that gives a distinct decision: each distinct score, and one above all."""
    unique = np.unique(scores)
    return np.append(unique, np.inf)


def eer_threshold(scores, labels) -> float:
    """The threshold where APCER and BPCER are closest (equal error), the lower ACER on a tie,
    then the lower threshold. Returned as the midpoint between neighbouring scores so it also
    holds for a model whose scores move a little."""
    scores, labels = _check(scores, labels)
    best, best_key = float(np.inf), None
    for t in _candidates(scores):
        rates = error_rates(scores, labels, t)
        key = (abs(rates.apcer - rates.bpcer), rates.acer)
        if best_key is None or key < best_key:
            best, best_key = t, key
    below = scores[scores < best]
    if np.isinf(best):
        return float(scores.max() + 1e-6)
    return float((best + below.max()) / 2) if below.size else float(best)


def bpcer_at_apcer(scores, labels, apcer: float = 0.05) -> float:
    """The lowest BPCER over thresholds whose APCER is at most `apcer`."""
    scores, labels = _check(scores, labels)
    best = 1.0
    for t in _candidates(scores):
        rates = error_rates(scores, labels, t)
        if rates.apcer <= apcer + 1e-12:
            best = min(best, rates.bpcer)
    return float(best)


def by_presentation(scores, labels, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean score, label, group id) per presentation; every frame of a group must share a label."""
    scores, labels = _check(scores, labels)
    groups = np.asarray(groups)
    names, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=scores, minlength=names.size)
    counts = np.bincount(inverse, minlength=names.size)
    first = np.zeros(names.size, dtype=int)
    first[inverse[::-1]] = labels[::-1]
    if (first[inverse] != labels).any():
        raise ValueError("a presentation mixes bona fide and attack frames")
    return sums / counts, first, names


def summary(scores, labels, threshold: float) -> dict:
    """Rates at `threshold`, AUC and BPCER at APCER 5%, in one dict."""
    rates = error_rates(scores, labels, threshold)
    return {
        **rates.as_dict(),
        "auc": auc(scores, labels),
        "bpcer_at_apcer5": bpcer_at_apcer(scores, labels, 0.05),
    }


def minimax_threshold(scores, labels, folds) -> float:
    """The threshold whose worst ACER over `folds` (one fold id per score) is lowest, the lower
    mean ACER on a tie. Each fold counts once however many presentations it has, so a large
    source cannot pull the threshold to suit itself. Candidates are midpoints between
    neighbouring distinct scores (and just outside them)."""
    scores, labels = _check(scores, labels)
    folds = np.asarray(folds)
    unique = np.unique(scores)
    candidates = np.concatenate(
        [[unique[0] - 1e-6], (unique[1:] + unique[:-1]) / 2, [unique[-1] + 1e-6]]
    )
    names = np.unique(folds)
    best, best_key = float(candidates[-1]), None
    for t in candidates:
        acers = [error_rates(scores[folds == f], labels[folds == f], t).acer for f in names]
        key = (max(acers), float(np.mean(acers)))
        if best_key is None or key < best_key:
            best, best_key = float(t), key
    return best
