"""Thresholds fitted to the site: the false-accept / false-reject curve of the enrolled gallery.

Genuine scores: each enrolled photo of a person with several photos, scored against the person's
other photos (leave one out), as recognition scores identities (mean of the k nearest samples).
Impostor scores: each photo scored against every other identity. From them, per threshold:

- `frr`: the share of genuine scores above it (an enrolled person not named);
- `far_pair`: the share of impostor (photo, identity) scores within it (one comparison, 1:1);
- `far_identification`: the chance that a stranger is named as someone by a gallery of the
  current size, 1 - (1 - far_pair)^N with N identities. With few impostor pairs the empirical
  `far_pair` is 0 below the closest impostor; the suggestion therefore also uses a normal
  distribution fitted to the impostor scores (`far_pair_fitted`), and takes the lower threshold.

Pure: numpy in, dicts and SVG text out; the API route and `watchpost calibrate` share it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

THRESHOLDS = np.round(np.arange(0.30, 0.801, 0.005), 3)


class CalibrationError(ValueError):
    """The gallery cannot be calibrated; the message says what is missing."""


@dataclass(frozen=True)
class Scores:
    genuine: np.ndarray  # one per photo of a person with several photos
    impostor: np.ndarray  # one per (photo, other identity)
    identities: int
    samples: int


def _k_mean(distances: np.ndarray, k: int) -> float:
    k = min(k, len(distances))
    return float(np.partition(distances, k - 1)[:k].mean())


def gallery_scores(
    matrix: np.ndarray,
    ids: list[int],
    *,
    k: int,
    max_probes: int = 1000,
    progress: Callable[[Sequence[int]], Iterable[int]] | None = None,
) -> Scores:
    """Genuine and impostor scores; at most `max_probes` photos (a fixed random choice) are
    scored, so a large gallery calibrates in seconds. `progress` wraps the photos scored (a
    progress bar)."""
    owners = np.asarray(ids, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    matrix, owners = np.asarray(matrix, np.float32)[order], owners[order]
    identities, starts, counts = np.unique(owners, return_index=True, return_counts=True)
    if len(identities) < 2:
        raise CalibrationError(
            f"{len(identities)} identity enrolled: impostor pairs need at least 2 people"
        )
    probes = np.arange(len(matrix))
    if len(probes) > max_probes:
        probes = np.sort(np.random.default_rng(0).choice(probes, max_probes, replace=False))
    genuine, impostor = [], []
    rows = [int(row) for row in probes]
    for row in progress(rows) if progress is not None else rows:
        distances = np.linalg.norm(matrix - matrix[row], axis=1)
        for identity, start, count in zip(identities, starts, counts, strict=True):
            own = distances[start : start + count]
            if identity == owners[row]:
                own = np.delete(own, row - start)  # leave the photo out of its own identity
                if len(own):
                    genuine.append(_k_mean(own, k))
            else:
                impostor.append(_k_mean(own, k))
    if not genuine:
        raise CalibrationError(
            "no person has two photos enrolled: genuine pairs need several photos of one person"
        )
    return Scores(np.array(genuine), np.array(impostor), len(identities), len(matrix))


def _normal_tail(x: float, mean: float, std: float) -> float:
    """P(score <= x) for a normal distribution."""
    return 0.5 * math.erfc((mean - x) / (std * math.sqrt(2)))


def calibrate(
    scores: Scores, *, target_far: float, current_threshold: float, gallery_identities: int
) -> dict[str, Any]:
    """The curve, the threshold suggested for `target_far` per identification, and the rates
    at the current threshold. `gallery_identities` is N, the size 1:N search runs at."""
    if not 0 < target_far < 1:
        raise CalibrationError("the target false-accept rate must be between 0 and 1")
    n = max(1, gallery_identities)
    mean, std = float(scores.impostor.mean()), float(scores.impostor.std(ddof=1) or 1e-6)

    def row(t: float) -> dict[str, Any]:
        far_pair = float(np.mean(scores.impostor <= t))
        fitted = _normal_tail(t, mean, std)
        return {
            "threshold": float(t),
            "frr": float(np.mean(scores.genuine > t)),
            "far_pair": far_pair,
            "far_pair_fitted": fitted,
            "far_identification": 1 - (1 - far_pair) ** n,
            "far_identification_fitted": 1 - (1 - fitted) ** n,
        }

    curve = [row(t) for t in THRESHOLDS]
    within = [
        r["threshold"]
        for r in curve
        if r["far_identification"] <= target_far and r["far_identification_fitted"] <= target_far
    ]
    suggested = max(within) if within else None
    return {
        "identities": scores.identities,
        "samples": scores.samples,
        "gallery_identities": n,
        "genuine_scores": len(scores.genuine),
        "impostor_scores": len(scores.impostor),
        "impostor_mean": mean,
        "impostor_std": std,
        "closest_impostor": float(scores.impostor.min()),
        "furthest_genuine": float(scores.genuine.max()),
        "target_far": target_far,
        "suggested_threshold": suggested,
        "at_suggested": row(suggested) if suggested is not None else None,
        "current_threshold": current_threshold,
        "at_current": row(current_threshold),
        "curve": curve,
    }


def svg(result: dict[str, Any], *, width: int = 640, height: int = 400) -> str:
    """The curve as an SVG plot: false accepts per identification (log scale) and false rejects
    against the threshold, with the current and suggested thresholds marked."""
    left, right, top, bottom = 60, 20, 30, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = float(THRESHOLDS[0]), float(THRESHOLDS[-1])
    floor = 1e-6  # the log axis runs from 1e-6 to 1

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(rate: float) -> float:
        return top + (-math.log10(max(rate, floor)) / 6) * plot_h

    def line(key: str) -> str:
        return " ".join(f"{x(r['threshold']):.1f},{y(r[key]):.1f}" for r in result["curve"])

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">False accepts per identification '
        f"({result['gallery_identities']} identities) and false rejects</text>",
    ]
    for power in range(7):
        rate = 10.0**-power
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 6}" y="{y(rate) + 4:.1f}" '
            f'text-anchor="end">1e-{power}</text>'
        )
    for t in np.arange(0.3, 0.81, 0.1):
        parts.append(
            f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{t:.1f}</text>'
        )
    parts += [
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#6b7280"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">threshold '
        "(identity score: mean distance of its nearest samples)</text>",
        f'<polyline points="{line("far_identification_fitted")}" fill="none" stroke="#dc2626" '
        f'stroke-dasharray="4 3"/>',
        f'<polyline points="{line("far_identification")}" fill="none" stroke="#dc2626"/>',
        f'<polyline points="{line("frr")}" fill="none" stroke="#2563eb"/>',
    ]
    marks = [("current", result["current_threshold"], "#6b7280")]
    if result["suggested_threshold"] is not None:
        marks.append(("suggested", result["suggested_threshold"], "#16a34a"))
    for label, t, colour in marks:
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{x(t) + 4:.1f}" y="{top + 12}" '
            f'fill="{colour}">{label} {t:.3f}</text>'
        )
    legend = [
        ("#dc2626", "", "false accepts (measured)"),
        ("#dc2626", ' stroke-dasharray="4 3"', "false accepts (normal fit)"),
        ("#2563eb", "", "false rejects"),
    ]
    for i, (colour, dash, label) in enumerate(legend):
        ly = top + plot_h - 40 + i * 14
        parts.append(
            f'<line x1="{left + 10}" x2="{left + 34}" y1="{ly}" y2="{ly}" stroke="{colour}"'
            f'{dash}/><text x="{left + 40}" y="{ly + 4}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
