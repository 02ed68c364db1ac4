"""The enrolled faces in memory, changed one identity at a time; 1:N search over them.

Identities are scored, not samples: an identity's distance to a face is the mean of its `k`
nearest samples (all of them when it has fewer). With the nearest sample alone (k=1) every photo
enrolled is one more chance for a stranger to fall within the threshold, so false accepts grew
with each photo; the mean of a few nearest asks the face to resemble several of them.

Storage is a slot array that grows by doubling: a sample added takes a free slot (or the next
one), a sample removed frees its slot (its squared norm set to infinity, so no search finds it).
Enrolling or erasing a person touches that person's rows only, never the whole matrix.

Search is exact (one matrix-vector product over every slot) below `approximate_from` samples.
At and above it, an approximate index (faiss IVF-Flat, docs/performance.md says why) proposes
the nearest samples; the identities owning them are then scored exactly on all their own
samples, so the k-mean scoring is the same, only the candidate set is approximate.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

# Identities scored first per query: those owning the nearest CANDIDATES samples. Another
# identity has no sample among them, so its k-mean is no nearer than the CANDIDATES-th sample;
# when the best two candidates are not nearer than that, the candidate set grows (x4).
CANDIDATES = 64


@dataclass(frozen=True)
class Neighbours:
    """Where a face falls: its person's own samples, and the nearest sample of anyone else."""

    own_samples: int
    own_nearest: float | None
    other_id: int | None
    other_name: str | None
    other_distance: float | None


@dataclass(frozen=True)
class Match:
    identity_id: int | None
    display_name: str | None
    distance: float | None
    runner_up_distance: float | None


INDEX_KINDS = ("ivf-flat", "ivf-sq8", "ivf-pq", "hnsw")


@dataclass(frozen=True)
class IndexSettings:
    """When and how the approximate index is used (see `RecognitionSettings`)."""

    approximate_from: int = 200_000  # samples; below, exact search (0: never approximate)
    nlist: int = 0  # IVF cells; 0: about 4 * sqrt(n) at build time
    nprobe: int = 192  # cells searched per query
    candidates: int = 64  # samples the index returns per query
    kind: str = "ivf-sq8"  # one of INDEX_KINDS
    ef_search: int = 64  # HNSW: the search's candidate list
    hnsw_m: int = 32  # HNSW: links per node
    train_per_cell: int = 16  # IVF: training samples per cell (k-means is most of the build)
    train_iterations: int = 10  # IVF: k-means iterations (faiss's default)
    # faiss threads while building (0: every core); searches use one. One: on the shared
    # 2-core machine two threads built slower (docs/performance.md)
    build_threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}: one of {', '.join(INDEX_KINDS)}")

    @classmethod
    def of(cls, settings: Any) -> IndexSettings:
        """The index settings of a `RecognitionSettings`."""
        return cls(
            approximate_from=settings.recognition_gallery_approximate_from,
            nlist=settings.recognition_gallery_nlist,
            nprobe=settings.recognition_gallery_nprobe,
            candidates=settings.recognition_gallery_candidates,
            kind=settings.recognition_gallery_index,
            ef_search=settings.recognition_gallery_ef_search,
        )


def identity_distance(samples: np.ndarray, embedding: np.ndarray, *, k: int) -> float:
    """One identity's score for a face: the mean distance of its k nearest samples (1:1)."""
    if len(samples) == 0:
        raise ValueError("an identity without samples has no distance")
    distances = np.linalg.norm(np.asarray(samples, np.float32) - embedding, axis=1)
    nearest = np.partition(distances, min(k, len(distances)) - 1)[: min(k, len(distances))]
    return float(nearest.mean())


class _IvfIndex:
    """faiss IVF over the gallery's slots (the slot number is the faiss id): Flat keeps each
    vector, SQ8 a byte per dimension, PQ 32 bytes; the candidates' owners are scored on their
    exact vectors anyway, so a coarser code only costs recall of the candidate set."""

    def __init__(self, vectors: np.ndarray, slots: np.ndarray, settings: IndexSettings) -> None:
        import faiss  # only galleries this large need it

        faiss.omp_set_num_threads(settings.build_threads or os.cpu_count() or 1)
        n = len(vectors)
        nlist = settings.nlist or max(64, int(4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatL2(128)
        index: Any
        if settings.kind == "ivf-sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, 128, nlist, faiss.ScalarQuantizer.QT_8bit
            )
        elif settings.kind == "ivf-pq":
            index = faiss.IndexIVFPQ(quantizer, 128, nlist, 32, 8)
        else:
            index = faiss.IndexIVFFlat(quantizer, 128, nlist)
        index.cp.niter = settings.train_iterations
        index.cp.min_points_per_centroid = 1  # fewer than faiss's 39 per cell is our choice
        rng = np.random.default_rng(0)
        train = vectors[rng.choice(n, min(n, nlist * settings.train_per_cell), replace=False)]
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        # removal by id without a scan (faiss builds DirectMap at import: no stub knows it)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        self._quantizer = quantizer  # faiss does not own it: keep it alive
        self._faiss = faiss
        self._index: Any = index
        self.tune(settings)
        self.add(slots, vectors)
        faiss.omp_set_num_threads(1)  # one query at a time: threads cost more than they save

    def tune(self, settings: IndexSettings) -> None:
        self._index.nprobe = settings.nprobe

    def add(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        if len(slots):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), slots.astype(np.int64)
            )

    def remove(self, slots: np.ndarray) -> None:
        if len(slots):
            self._index.remove_ids(self._faiss.IDSelectorArray(slots.astype(np.int64)))

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        _, found = self._index.search(query.reshape(-1, 128), count)
        return np.asarray(found[0][found[0] >= 0], dtype=np.int64)

    def nbytes(self) -> int:
        """The index's own memory: codes and ids in the lists, the direct map (an id ->
        position hash entry, about 16 bytes), the centroids."""
        index = self._index
        return index.ntotal * (index.code_size + 8 + 16) + index.nlist * 128 * 4


class _HnswIndex:
    """faiss HNSW-Flat. It cannot remove a vector: a removed slot's node stays in the graph as a
    tombstone (its position maps to no slot) and is dropped from the answer, so a gallery with
    much churn should be rebuilt now and then."""

    def __init__(self, vectors: np.ndarray, slots: np.ndarray, settings: IndexSettings) -> None:
        import faiss

        faiss.omp_set_num_threads(settings.build_threads or os.cpu_count() or 1)
        self._index: Any = faiss.IndexHNSWFlat(128, settings.hnsw_m)
        self._index.hnsw.efConstruction = 40
        self._slot_of = np.zeros(0, np.int64)  # graph position -> slot (-1: removed)
        self._position_of: dict[int, int] = {}
        self.tune(settings)
        self.add(slots, vectors)
        faiss.omp_set_num_threads(1)

    def tune(self, settings: IndexSettings) -> None:
        self._index.hnsw.efSearch = settings.ef_search

    def add(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        if not len(slots):
            return
        start = self._index.ntotal
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._slot_of = np.concatenate([self._slot_of, slots.astype(np.int64)])
        self._position_of.update(zip(slots.tolist(), range(start, start + len(slots)), strict=True))

    def remove(self, slots: np.ndarray) -> None:
        for slot in slots.tolist():
            position = self._position_of.pop(slot, None)
            if position is not None:
                self._slot_of[position] = -1

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        _, found = self._index.search(query.reshape(-1, 128), count)
        positions = found[0][found[0] >= 0]
        slots = self._slot_of[positions]
        return np.asarray(slots[slots >= 0], dtype=np.int64)

    def nbytes(self) -> int:
        """Vectors, level-0 links (2M per node) and the upper levels' (about M / (M - 1) more
        nodes' worth of M links), and the position maps."""
        m = self._index.hnsw.nb_neighbors(1)
        n = self._index.ntotal
        return n * (128 * 4 + 2 * m * 4 + 8 + 8 + 64) + int(n / (m - 1)) * m * 4


def build_index(vectors: np.ndarray, slots: np.ndarray, settings: IndexSettings):
    """The approximate index `settings.kind` over these slots' vectors."""
    if settings.kind == "hnsw":
        return _HnswIndex(vectors, slots, settings)
    return _IvfIndex(vectors, slots, settings)


class Gallery:
    """Thread-safe: searches and changes take one lock (a change of one identity costs
    microseconds, a search milliseconds)."""

    def __init__(
        self,
        embeddings: np.ndarray,
        identity_ids: list[int] | np.ndarray,
        names: list[str] | dict[int, str],
        *,
        k: int = 1,
        sample_ids: np.ndarray | None = None,
        index: IndexSettings | None = None,
    ) -> None:
        """`names` is one per row, or a dict of each identity's name."""
        n = len(identity_ids)
        if embeddings.shape != (n, 128) or (not isinstance(names, dict) and len(names) != n):
            raise ValueError("gallery rows, ids and names must line up")
        if sample_ids is not None and len(sample_ids) != n:
            raise ValueError("gallery rows and sample ids must line up")
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        # Without settings, always exact (benchmarks, calibration); the service passes its own.
        self.index_settings = index or IndexSettings(approximate_from=0)
        self._lock = threading.RLock()
        ids = np.asarray(identity_ids, dtype=np.int64)
        capacity = max(1024, n + n // 4)
        self._emb = np.zeros((capacity, 128), np.float32)
        self._emb[:n] = embeddings
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matrix-vector product per query instead of an
        # (n, 128) difference array, about 10x faster at 100k embeddings. A free slot's norm is
        # infinite, so its distance is too.
        self._sq = np.full(capacity, np.inf, np.float32)
        self._sq[:n] = np.einsum("ij,ij->i", self._emb[:n], self._emb[:n])
        self._owner = np.full(capacity, -1, np.int64)
        self._owner[:n] = ids
        self._sample = np.full(capacity, -1, np.int64)
        self._sample[:n] = np.arange(n) if sample_ids is None else sample_ids
        self._end = n  # slots in use or freed lie below this
        self._free: list[int] = []
        self._rows: dict[int, np.ndarray] = {}
        if n:
            order = np.argsort(ids, kind="stable")
            unique, starts = np.unique(ids[order], return_index=True)
            for identity, rows in zip(unique.tolist(), np.split(order, starts[1:]), strict=True):
                self._rows[identity] = rows
        if isinstance(names, dict):
            self._names = {int(i): names.get(int(i), "") for i in self._rows}
        else:
            self._names = {int(i): nm for i, nm in zip(ids.tolist(), names, strict=True)}
        self._index: _IvfIndex | _HnswIndex | None = None
        self._maybe_build_index()

    @classmethod
    def empty(cls, *, k: int = 1, index: IndexSettings | None = None) -> Gallery:
        return cls(np.zeros((0, 128), np.float32), [], [], k=k, index=index)

    def __len__(self) -> int:
        return self._end - len(self._free)

    @property
    def identity_count(self) -> int:
        return len(self._rows)

    @property
    def approximate(self) -> bool:
        return self._index is not None

    @property
    def max_sample_id(self) -> int:
        """The largest sample id held (-1 when empty)."""
        with self._lock:
            return int(self._sample[: self._end].max()) if self._end else -1

    def nbytes(self) -> int:
        """Bytes of the arrays (the index's own lists are about the embeddings' size again)."""
        return self._emb.nbytes + self._sq.nbytes + self._owner.nbytes + self._sample.nbytes

    def sample_summary(self) -> tuple[int, int]:
        """(samples held, sum of their sample ids): compared with PostgreSQL's to find drift."""
        with self._lock:
            live = self._sample[: self._end]
            live = live[live >= 0]
            return len(live), int(live.sum())

    def has(self, identity_id: int) -> bool:
        return identity_id in self._rows

    def name_of(self, identity_id: int) -> str | None:
        return self._names.get(identity_id)

    # Changes -------------------------------------------------------------------------------

    def replace_identity(
        self, identity_id: int, name: str | None, embeddings: np.ndarray, sample_ids: np.ndarray
    ) -> None:
        """The identity's samples become exactly these (none: it leaves the gallery)."""
        with self._lock:
            self._remove_rows(identity_id)
            if len(embeddings):
                self._add_rows(identity_id, name or "", embeddings, sample_ids)

    def remove_identity(self, identity_id: int) -> None:
        with self._lock:
            self._remove_rows(identity_id)

    def add_samples(
        self,
        identity_ids: np.ndarray,
        names: dict[int, str],
        embeddings: np.ndarray,
        sample_ids: np.ndarray,
    ) -> int:
        """Add samples not yet held (by sample id); the number added."""
        added = 0
        with self._lock:
            for identity in np.unique(identity_ids).tolist():
                mine = identity_ids == identity
                rows = self._rows.get(identity)
                held = self._sample[rows] if rows is not None else np.zeros(0, np.int64)
                new = mine & ~np.isin(sample_ids, held)
                if new.any():
                    self._add_rows(identity, names[identity], embeddings[new], sample_ids[new])
                    added += int(new.sum())
        return added

    def _add_rows(
        self, identity_id: int, name: str, embeddings: np.ndarray, sample_ids: np.ndarray
    ) -> None:
        count = len(embeddings)
        reuse = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = count - len(reuse)
        if self._end + fresh > len(self._emb):
            self._grow(self._end + fresh)
        slots = np.asarray(reuse + list(range(self._end, self._end + fresh)), dtype=np.int64)
        self._end += fresh
        vectors = np.asarray(embeddings, np.float32).reshape(count, 128)
        self._emb[slots] = vectors
        self._sq[slots] = np.einsum("ij,ij->i", vectors, vectors)
        self._owner[slots] = identity_id
        self._sample[slots] = sample_ids
        old = self._rows.get(identity_id)
        self._rows[identity_id] = slots if old is None else np.concatenate([old, slots])
        self._names[identity_id] = name
        if self._index is not None:
            self._index.add(slots, vectors)
        else:
            self._maybe_build_index()

    def _remove_rows(self, identity_id: int) -> None:
        slots = self._rows.pop(identity_id, None)
        self._names.pop(identity_id, None)
        if slots is None:
            return
        self._sq[slots] = np.inf
        self._owner[slots] = -1
        self._sample[slots] = -1
        self._emb[slots] = 0.0
        self._free.extend(slots.tolist())
        if self._index is not None:
            self._index.remove(slots)

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * len(self._emb))
        emb = np.zeros((capacity, 128), np.float32)
        emb[: self._end] = self._emb[: self._end]
        self._emb = emb
        for name, fill in (("_sq", np.inf), ("_owner", -1), ("_sample", -1)):
            old = getattr(self, name)
            new = np.full(capacity, fill, old.dtype)
            new[: self._end] = old[: self._end]
            setattr(self, name, new)

    def _maybe_build_index(self) -> None:
        threshold = self.index_settings.approximate_from
        if self._index is None and threshold and len(self) >= threshold:
            live = np.flatnonzero(self._owner[: self._end] >= 0)
            self._index = build_index(self._emb[live], live, self.index_settings)

    # Search --------------------------------------------------------------------------------

    def distances(self, embedding: np.ndarray) -> np.ndarray:
        """The distance from `embedding` to every slot (infinite for free slots)."""
        query = embedding.astype(np.float32)
        end = self._end
        squared = self._sq[:end] - 2.0 * (self._emb[:end] @ query) + float(query @ query)
        return np.sqrt(np.maximum(squared, 0.0))

    def scores(self, embedding: np.ndarray, *, exact: bool = False) -> dict[int, float]:
        """The k-mean distance of the identities that can be the nearest two: exact below the
        index threshold (or when asked), else of the identities the index proposes."""
        with self._lock:
            if self._index is not None and not exact:
                return self._approximate_scores(embedding)
            return self._exact_scores(embedding)

    def _exact_scores(self, embedding: np.ndarray) -> dict[int, float]:
        distances = self.distances(embedding)
        live = len(self)
        count = CANDIDATES
        while count < live:
            nearest = np.argpartition(distances, count - 1)[:count]
            owners = self._owner[nearest]
            candidates = set(owners[owners >= 0].tolist())
            bound = float(distances[nearest].max())
            scores = {i: self._k_mean(distances[self._rows[i]]) for i in candidates}
            # An identity with no sample among the nearest has a k-mean of at least `bound`;
            # only when the best two candidates are nearer than that is the search done.
            if len(scores) >= 2 and sorted(scores.values())[1] <= bound:
                return scores
            count *= 4
        return {i: self._k_mean(distances[rows]) for i, rows in self._rows.items()}

    def _approximate_scores(self, embedding: np.ndarray) -> dict[int, float]:
        assert self._index is not None
        query = np.asarray(embedding, np.float32)
        nearest = self._index.search(query, self.index_settings.candidates)
        owners = self._owner[nearest]
        candidates = list(dict.fromkeys(owners[owners >= 0].tolist()))
        if not candidates:
            return {}
        # Every candidate's k-mean on all its own samples, in one pass: the distances sorted
        # within each identity's run, the first k of each run summed.
        rows = [self._rows[i] for i in candidates]
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        slots = np.concatenate(rows)
        diff = self._emb[slots] - query
        own = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        group = np.repeat(np.arange(len(rows)), lengths)
        own = own[np.lexsort((own, group))]  # runs stay in place, each sorted
        rank = np.arange(len(own)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        kept = rank < self.k
        sums = np.bincount(group[kept], weights=own[kept], minlength=len(rows))
        means = sums / np.minimum(lengths, self.k)
        return dict(zip(candidates, means.tolist(), strict=True))

    def _k_mean(self, own: np.ndarray) -> float:
        k = min(self.k, len(own))
        return float(np.partition(own, k - 1)[:k].mean())

    def neighbours(self, embedding: np.ndarray, identity_id: int | None) -> Neighbours:
        """The distance to the nearest of `identity_id`'s own samples, and the nearest sample
        of any other identity: exact below the index threshold; above it, the nearest among
        the samples the index proposes (more asked while all of them are the person's own)."""
        query = np.asarray(embedding, np.float32).reshape(128)
        with self._lock:
            mine = self._rows.get(identity_id) if identity_id is not None else None
            own = np.zeros(0, np.int64) if mine is None else mine
            own_nearest = (
                float(np.linalg.norm(self._emb[own] - query, axis=1).min()) if len(own) else None
            )
            excluded = -1 if identity_id is None else identity_id  # free slots' owner is -1
            if self._index is not None:
                count = self.index_settings.candidates + len(own)
                while True:
                    found = self._index.search(query, count)
                    owners = self._owner[found]
                    slots = found[(owners >= 0) & (owners != excluded)]
                    if len(slots) or count >= len(self):
                        break
                    count *= 4
                distances = np.linalg.norm(self._emb[slots] - query, axis=1)
            else:
                distances = self.distances(query)
                distances[own] = np.inf
                slots = np.arange(len(distances))
            if len(slots) and np.isfinite(distances.min()):
                nearest = int(slots[int(np.argmin(distances))])
                other = int(self._owner[nearest])
                return Neighbours(
                    len(own), own_nearest, other, self._names[other], float(distances.min())
                )
            return Neighbours(len(own), own_nearest, None, None, None)

    def identify(self, embedding: np.ndarray, *, threshold: float, exact: bool = False) -> Match:
        """Nearest enrolled identity within `threshold`, and the margin to the next identity."""
        with self._lock:
            if not self._rows:
                return Match(None, None, None, None)
            scores = self.scores(embedding, exact=exact)
            if not scores:
                return Match(None, None, None, None)
            ranked = sorted(scores, key=scores.__getitem__)
            best_id = ranked[0]
            distance = scores[best_id]
            runner_up = scores[ranked[1]] if len(ranked) > 1 else None
            if distance > threshold:
                return Match(None, None, distance, runner_up)
            return Match(best_id, self._names[best_id], distance, runner_up)
