"""The approximate 1:N index's levers, each against the index shipped before them, in one run.

    WATCHPOST_DATA_DIR=/work/shared/data nice -n 10 \\
      .venv/bin/python -m benchmarks.gallery_index [--size 100000] [--queries 400]

One synthetic gallery shaped like real dlib embeddings (benchmarks/face_statistics.py, 4 samples
per identity, as benchmarks/gallery_scale.py) in memory, no database. Each index kind is built
once over it (build time, and the memory it adds: counted by the index and the process's
resident growth); every variant (kind, cells searched, candidates, HNSW's efSearch, faiss
threads) is then searched through `Gallery.identify`, the service's own path: the index proposes
candidates, their owners are scored exactly (mean of the 3 nearest samples). The variants take
each probe in a shuffled order, so a load spike on the shared machine falls on all of them
alike; the figures are p50/p99 per query, the p99 ratio against the reference variant (the
index shipped before these levers: IVF-Flat, nprobe 48), recall@1 of the identity decision (and
of the best identity regardless of the threshold) against exact search over every identity, and
the CPU time of the query's
thread (what a query costs without the other jobs' preemptions of a shared machine). The query
phase runs at the service's priority (nice 0) even when the build ran under `nice`. Batching
(several faces of one frame in one faiss call) is measured at the index alone. Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.face_statistics import lfw_embeddings, measure, noise, synthetic_gallery
from services.recognition.gallery import Gallery, IndexSettings, build_index
from watchpost.progress import STDERR, track
from watchpost.settings import RecognitionSettings

PER_PERSON = 4


@dataclass(frozen=True)
class Variant:
    name: str
    settings: IndexSettings
    threads: int = 1


def variants(shipped: IndexSettings, nlist: int) -> list[Variant]:
    # The reference: the index as shipped before these levers were measured (IVF-Flat, 48 of
    # 4 sqrt(n) cells, 64 candidates, trained on 40 samples a cell with one thread).
    before = IndexSettings(
        approximate_from=1,
        nlist=nlist,
        nprobe=48,
        candidates=64,
        kind="ivf-flat",
        train_per_cell=40,
        build_threads=1,
    )
    ivf = before
    sq8 = replace(ivf, kind="ivf-sq8")
    pq = replace(ivf, kind="ivf-pq")
    hnsw = replace(ivf, kind="hnsw")
    return [
        Variant("reference: ivf-flat nprobe 48", before),
        Variant("shipped", replace(shipped, approximate_from=1, nlist=nlist)),
        Variant("ivf-flat nprobe 96", replace(ivf, nprobe=96)),
        Variant("ivf-flat nprobe 128", replace(ivf, nprobe=128)),
        Variant("ivf-sq8 nprobe 48", replace(sq8, nprobe=48)),
        Variant("ivf-sq8 nprobe 128", replace(sq8, nprobe=128)),
        Variant("ivf-sq8 nprobe 192", replace(sq8, nprobe=192)),
        Variant("ivf-sq8 nprobe 256, 128 cand.", replace(sq8, nprobe=256, candidates=128)),
        Variant("ivf-flat, built with 2 threads", replace(ivf, build_threads=2)),
        Variant("ivf-sq8 nprobe 128, 16 a cell", replace(sq8, nprobe=128, train_per_cell=16)),
        Variant("ivf-sq8 nprobe 192, 16 a cell", replace(sq8, nprobe=192, train_per_cell=16)),
        Variant("ivf-pq nprobe 128, 128 cand.", replace(pq, nprobe=128, candidates=128)),
        Variant("hnsw ef 64", replace(hnsw, ef_search=64)),
        Variant("hnsw ef 128", replace(hnsw, ef_search=128)),
    ]


def index_key(settings: IndexSettings) -> tuple:
    """What the built index depends on (searches differ only in what `tune` sets)."""
    return (
        settings.kind,
        settings.nlist,
        settings.hnsw_m if settings.kind == "hnsw" else 0,
        settings.train_per_cell,
        settings.train_iterations,
        settings.build_threads,
    )


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--lfw-images", type=int, default=700, help="photos measured (cached)")
    parser.add_argument("--no-hnsw", action="store_true", help="skip HNSW (slow to build)")
    parser.add_argument("--no-pq", action="store_true", help="skip IVF-PQ (slow to train)")
    parser.add_argument("--only", nargs="+", help="variants whose names start so (and reference)")
    parser.add_argument("--skip", nargs="+", default=[], help="variants whose names start so")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    settings = RecognitionSettings()
    shipped = replace(IndexSettings.of(settings), approximate_from=1)
    threshold, k = settings.recognition_threshold, settings.recognition_score_k
    stats = measure(*lfw_embeddings(args.data or settings.data_dir, limit=args.lfw_images))
    rng = np.random.default_rng(args.size)
    rows, owner, centres = synthetic_gallery(stats, args.size, PER_PERSON, rng)
    names = {i: f"p{i}" for i in range(len(centres))}
    gallery = Gallery(rows, owner, names, k=k, index=IndexSettings(approximate_from=0))
    live = np.arange(args.size, dtype=np.int64)
    nlist = shipped.nlist or max(64, int(4 * np.sqrt(args.size)))
    chosen = [
        v
        for v in variants(shipped, nlist)
        if not (args.no_hnsw and v.settings.kind == "hnsw")
        and not (args.no_pq and v.settings.kind == "ivf-pq")
        and (not args.only or v.name.startswith("reference") or v.name.startswith(tuple(args.only)))
        and not (args.skip and v.name.startswith(tuple(args.skip)))
    ]
    print(
        f"{args.size:,} samples of {len(centres):,} identities; {nlist} IVF cells;"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    indexes: dict[tuple, object] = {}
    builds: dict[tuple, dict] = {}
    for variant in chosen:
        key = index_key(variant.settings)
        if key in indexes:
            continue
        STDERR.print(f"building {variant.name} over {args.size:,} samples ...")
        before, load_before = resident_bytes(), os.getloadavg()[0]
        start = time.perf_counter()
        indexes[key] = index = build_index(rows, live, variant.settings)
        seconds = time.perf_counter() - start
        grown = resident_bytes() - before
        builds[key] = {
            "kind": key[0],
            "for": variant.name,
            "train_per_cell": variant.settings.train_per_cell,
            "build_threads": variant.settings.build_threads or os.cpu_count(),
            "build_s": seconds,
            "load_average": load_before,
            "mb_per_million_counted": index.nbytes() / args.size * 1e6 / 2**20,
            "mb_per_million_resident": grown / args.size * 1e6 / 2**20,
        }
        print(
            f"  {key[0]:<9} for {variant.name!r}: built in {seconds:6.1f} s"
            f" (load {load_before:.1f}, {builds[key]['build_threads']} threads),"
            f" {builds[key]['mb_per_million_counted']:.0f} MB per million counted,"
            f" {builds[key]['mb_per_million_resident']:.0f} resident"
        )
    exact_arrays = gallery.nbytes() / args.size * 1e6 / 2**20

    half = args.queries // 2
    genuine = centres[rng.integers(0, len(centres), half)] + noise(stats, half, rng)
    strangers = rng.multivariate_normal(stats.mean, stats.between, args.queries - half).astype(
        np.float32
    ) + noise(stats, args.queries - half, rng)
    probes = np.concatenate([genuine, strangers])
    reference = [gallery.identify(p, threshold=threshold, exact=True) for p in probes]
    loose = [gallery.identify(p, threshold=np.inf, exact=True).identity_id for p in probes]

    import faiss

    os.setpriority(os.PRIO_PROCESS, 0, 0)  # the service's priority for the timed part
    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {v.name: [] for v in chosen}
    cpu: dict[str, list[float]] = {v.name: [] for v in chosen}  # this thread's CPU time
    same = dict.fromkeys(times, 0)
    same_best = dict.fromkeys(times, 0)
    exact_ms: list[float] = []
    order = list(range(len(chosen)))
    shuffle = random.Random(0)
    for i, probe in enumerate(track(probes, "1:N, every variant per probe", auto_refresh=False)):
        shuffle.shuffle(order)
        for j in order:
            variant = chosen[j]
            index = indexes[index_key(variant.settings)]
            index.tune(variant.settings)  # type: ignore[attr-defined]
            gallery._index = index  # type: ignore[assignment]  # the variant's index, in place
            gallery.index_settings = variant.settings
            faiss.omp_set_num_threads(variant.threads)
            t, c = time.perf_counter(), time.thread_time()
            found = gallery.identify(probe, threshold=threshold)
            times[variant.name].append((time.perf_counter() - t) * 1000)
            cpu[variant.name].append((time.thread_time() - c) * 1000)
            faiss.omp_set_num_threads(1)
            same[variant.name] += found.identity_id == reference[i].identity_id
            best = gallery.identify(probe, threshold=np.inf).identity_id
            same_best[variant.name] += best == loose[i]
        t = time.perf_counter()
        gallery.identify(probe, threshold=threshold, exact=True)
        exact_ms.append((time.perf_counter() - t) * 1000)
    load_end = os.getloadavg()[0]

    # faiss's threads, apart: an OpenMP team spins on the other core after its search, which
    # slows whatever runs next (in the shuffled loop above it would hit the other variants).
    # The reference one thread, two threads, one thread again, each over every probe.
    reference_variant = chosen[0]
    gallery._index = indexes[index_key(reference_variant.settings)]  # type: ignore[assignment]
    indexes[index_key(reference_variant.settings)].tune(reference_variant.settings)  # type: ignore[attr-defined]
    gallery.index_settings = reference_variant.settings
    threads_ms: dict[str, list[float]] = {"1": [], "2": [], "1 again": []}
    for label, count in (("1", 1), ("2", 2), ("1 again", 1)):
        faiss.omp_set_num_threads(count)
        for probe in probes:
            t = time.perf_counter()
            gallery.identify(probe, threshold=threshold)
            threads_ms[label].append((time.perf_counter() - t) * 1000)
    faiss.omp_set_num_threads(1)

    # Each variant alone over every probe, as the service runs one index: in the shuffled loop
    # each query finds the caches full of the other variants' lists.
    alone: dict[str, tuple[float, float, float]] = {}
    for variant in chosen:
        index = indexes[index_key(variant.settings)]
        index.tune(variant.settings)  # type: ignore[attr-defined]
        gallery._index = index  # type: ignore[assignment]
        gallery.index_settings = variant.settings
        ms, cpu_ms = [], []
        for probe in probes:
            t, c = time.perf_counter(), time.thread_time()
            gallery.identify(probe, threshold=threshold)
            ms.append((time.perf_counter() - t) * 1000)
            cpu_ms.append((time.thread_time() - c) * 1000)
        alone[variant.name] = (*percentiles(ms), percentiles(cpu_ms)[1])
    load_alone = os.getloadavg()[0]

    batching = {}
    for key, index in indexes.items():
        faiss_index = index._index  # type: ignore[attr-defined]
        block = np.ascontiguousarray(probes[:200], dtype=np.float32)
        t = time.perf_counter()
        for q in block:
            faiss_index.search(q.reshape(1, 128), 64)
        one = (time.perf_counter() - t) * 1000 / len(block)
        t = time.perf_counter()
        for start in range(0, len(block), 8):
            faiss_index.search(block[start : start + 8], 64)
        eight = (time.perf_counter() - t) * 1000 / len(block)
        batching[key[0]] = {"one_ms_per_query": one, "batch8_ms_per_query": eight}

    ref_p50, ref_p99 = percentiles(times[chosen[0].name])
    print(
        f"queries: {len(probes)} (half genuine, half strangers); load average {load_start:.1f}"
        f" -> {load_end:.1f}; exact search p50/p99 {percentiles(exact_ms)[0]:.2f}/"
        f"{percentiles(exact_ms)[1]:.2f} ms; gallery arrays {exact_arrays:.0f} MB per million"
    )
    print(
        f"{'variant':<32} {'p50 ms':>7} {'p99 ms':>7} {'p99/ref':>8} {'cpu p50':>8}"
        f" {'cpu p99':>8} {'recall':>7} {'best':>6}"
    )
    results = []
    for variant in chosen:
        p50, p99 = percentiles(times[variant.name])
        cpu50, cpu99 = percentiles(cpu[variant.name])
        row = {
            "variant": variant.name,
            "kind": variant.settings.kind,
            "nlist": nlist if variant.settings.kind != "hnsw" else None,
            "nprobe": variant.settings.nprobe if variant.settings.kind != "hnsw" else None,
            "ef_search": variant.settings.ef_search if variant.settings.kind == "hnsw" else None,
            "candidates": variant.settings.candidates,
            "threads": variant.threads,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max(times[variant.name]),
            "cpu_p50_ms": cpu50,
            "cpu_p99_ms": cpu99,
            "p99_vs_reference": p99 / ref_p99,
            "recall_at_1_decision": same[variant.name] / len(probes),
            "recall_at_1_best_identity": same_best[variant.name] / len(probes),
        }
        results.append(row)
        print(
            f"{variant.name:<32} {p50:7.2f} {p99:7.2f} {row['p99_vs_reference']:8.2f}"
            f" {cpu50:8.2f} {cpu99:8.2f}"
            f" {row['recall_at_1_decision']:7.3f} {row['recall_at_1_best_identity']:6.3f}"
        )
    threads = {label: percentiles(ms) for label, ms in threads_ms.items()}
    for label, (p50, p99) in threads.items():
        print(f"reference with {label} faiss thread(s): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    ref_alone = alone[chosen[0].name][1]
    print(f"each variant alone over every probe (load average {load_alone:.1f}):")
    for name, (p50, p99, cpu99) in alone.items():
        print(
            f"  {name:<32} p50 {p50:.2f} ms, p99 {p99:.2f} ms (x{p99 / ref_alone:.2f}),"
            f" cpu p99 {cpu99:.2f} ms"
        )
    for kind, b in batching.items():
        print(
            f"batching, {kind} index alone: {b['one_ms_per_query']:.2f} ms per query one at a"
            f" time, {b['batch8_ms_per_query']:.2f} in batches of 8"
        )

    def rounded(d: dict) -> dict:
        return {a: round(b, 4) if isinstance(b, float) else b for a, b in d.items()}

    print(
        json.dumps(
            {
                "size": args.size,
                "identities": len(centres),
                "queries": len(probes),
                "nlist": nlist,
                "load_average_queries": [load_start, load_end],
                "exact_p50_ms": round(percentiles(exact_ms)[0], 3),
                "exact_p99_ms": round(percentiles(exact_ms)[1], 3),
                "reference_p50_ms": round(ref_p50, 3),
                "reference_p99_ms": round(ref_p99, 3),
                "gallery_mb_per_million": round(exact_arrays, 1),
                "builds": [rounded(b) for b in builds.values()],
                "batching": {a: rounded(b) for a, b in batching.items()},
                "alone_p50_p99_cpu99_ms": {a: [round(x, 3) for x in b] for a, b in alone.items()},
                "load_average_alone": load_alone,
                "threads_p50_p99_ms": {a: [round(x, 3) for x in b] for a, b in threads.items()},
                "variants": [rounded(r) for r in results],
            }
        )
    )


if __name__ == "__main__":
    main()
