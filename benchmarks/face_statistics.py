"""Synthetic galleries shaped like real dlib embeddings, for the scale benchmarks.

The statistics are measured on the real photos of `faces/lfw_view1_devtest` (963 people, 1,549
images): every image is embedded (HOG, as enrolment does), the within-person covariance comes
from the deviations of each image from its person's mean (people with 2+ images), and the
between-person covariance from one image per person less the within-person part. A synthetic
identity is a centre drawn from N(mean, between); its samples are that centre plus
N(0, within) noise. The real people's own centres are used first, so the synthetic gallery holds
the real faces too. The embeddings are cached (not committed: derived from the data) under the
system's temporary directory, keyed by the photos' names.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from benchmarks.faces import embed_photo


@dataclass(frozen=True)
class FaceStatistics:
    mean: np.ndarray  # (128,)
    between: np.ndarray  # (128, 128) covariance of identity centres
    within: np.ndarray  # (128, 128) covariance of a sample around its identity's centre
    centres: np.ndarray  # the real people's mean embeddings
    people: int
    images: int
    intra_distance: float  # real: mean distance between two images of one person
    inter_distance: float  # real: mean distance between images of two people


def lfw_embeddings(data_dir: Path, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every LFW devtest image's embedding (rows) and its person's number; cached."""
    folder = data_dir / "faces" / "lfw_view1_devtest" / "images"
    if not folder.is_dir():
        raise SystemExit(f"missing {folder}: set WATCHPOST_DATA_DIR to the shared data")
    photos = sorted(folder.glob("*/*.jpg"))
    if limit is not None:  # people with several photos first: they measure the spread
        count = {p.parent.name: 0 for p in photos}
        for p in photos:
            count[p.parent.name] += 1
        photos = sorted(photos, key=lambda p: (count[p.parent.name] < 2, p.parent.name, p.name))
        photos = sorted(photos[:limit])
    key = hashlib.sha256("\n".join(p.name for p in photos).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"watchpost-lfw-embeddings-{key}.npz"
    if cache.exists():
        stored = np.load(cache)
        return stored["rows"], stored["people"]
    names = sorted({p.parent.name for p in photos})
    number = {n: i for i, n in enumerate(names)}
    rows, people = [], []
    for photo in track(photos, description="embedding LFW photos (cached after)"):
        found = embed_photo(photo, cnn_fallback=False)
        if found.embedding is not None:
            rows.append(found.embedding)
            people.append(number[photo.parent.name])
    result = np.asarray(rows, np.float32), np.asarray(people, np.int64)
    np.savez(cache, rows=result[0], people=result[1])
    return result


def measure(rows: np.ndarray, people: np.ndarray) -> FaceStatistics:
    unique = np.unique(people)
    centres = np.stack([rows[people == p].mean(axis=0) for p in unique])
    deviations: list[np.ndarray] = []
    intra: list[Any] = []
    for p in unique:
        own = rows[people == p]
        if len(own) >= 2:
            # Deviation from a mean of n samples understates the spread by (n-1)/n.
            scale = np.sqrt(len(own) / (len(own) - 1))
            deviations.append((own - own.mean(axis=0)) * scale)
            intra.extend(np.linalg.norm(own[i] - own[j]) for i in range(len(own)) for j in range(i))
    within = np.cov(np.concatenate(deviations), rowvar=False)
    first = np.stack([rows[np.flatnonzero(people == p)[0]] for p in unique])
    values, vectors = np.linalg.eigh(np.cov(first, rowvar=False) - within)
    between = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(first), (2, 4000))
    keep = a != b
    inter = np.linalg.norm(first[a[keep]] - first[b[keep]], axis=1)
    return FaceStatistics(
        mean=first.mean(axis=0),
        between=between,
        within=within,
        centres=centres.astype(np.float32),
        people=len(unique),
        images=len(rows),
        intra_distance=float(np.mean(intra)),
        inter_distance=float(inter.mean()),
    )


def synthetic_gallery(
    stats: FaceStatistics, size: int, per_person: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`size` samples of `size // per_person` identities (real centres first): the rows, each
    row's identity (0..), and the identity centres."""
    identities = max(1, size // per_person)
    drawn = rng.multivariate_normal(stats.mean, stats.between, identities, method="eigh")
    centres = drawn.astype(np.float32)
    real = min(len(stats.centres), identities)
    centres[:real] = stats.centres[:real]
    owner = np.arange(size, dtype=np.int64) % identities
    rows = centres[owner] + noise(stats, size, rng)
    return rows, owner, centres


def noise(stats: FaceStatistics, count: int, rng: np.random.Generator) -> np.ndarray:
    """Per-sample deviations with the real within-person covariance."""
    out = np.empty((count, 128), np.float32)
    chunk = 200_000
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        out[start : start + n] = rng.multivariate_normal(
            np.zeros(128), stats.within, n, method="eigh"
        )
    return out
