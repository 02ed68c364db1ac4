"""The recognition gallery at scale: load, memory, enrolment to recognisable, 1:N search, recall.

    WATCHPOST_DATA_DIR=/work/shared/data WATCHPOST_DATABASE_URL=postgresql://... \\
      nice -n 10 .venv/bin/python -m benchmarks.gallery_scale [--sizes 100000] [--million]

Synthetic galleries shaped like real dlib embeddings (benchmarks/face_statistics.py: centres and
within-person spread measured on the LFW devtest photos), 4 samples per identity, written to a
schema of their own with one binary COPY. Per size:
- load: the binary COPY loader against the row-by-row loader it replaces (ratio base);
- memory per million samples: the exact gallery (arrays and per-identity objects, traced) and
  what the approximate index adds (faiss's lists, direct map and centroids, counted);
- enrolment to recognisable: a person enrolled as the dashboard does (commit, change-log entry,
  version) until a `GalleryHolder` that has loaded the gallery names them; erasure to gone;
- 1:N search p50/p99 of the approximate path against exact search on the same gallery and probes
  (ratio base), and recall@1 of the identity decision (same identity, or both none, at the
  shipped threshold) and of the best identity alone, against exact search.
Probes: genuine (a new sample of an enrolled identity) and strangers (a new centre), half each.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import redis
from psycopg.conninfo import make_conninfo
from rich.progress import track

from benchmarks.face_statistics import lfw_embeddings, measure, noise, synthetic_gallery
from services.dashboard.enrolment import announce_change
from services.recognition.gallery import Gallery, IndexSettings
from services.recognition.stream import GalleryHolder
from watchpost.db import apply_migrations, identities, open_pool
from watchpost.keys import Keys
from watchpost.settings import RecognitionSettings

PER_PERSON = 4


def copy_rows(rows: np.ndarray, owner: np.ndarray) -> bytes:
    """face_samples (id, identity_id, embedding, box, image_jpeg) as one binary COPY stream."""
    n = len(rows)
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("identity_len", ">i4"),
            ("identity_id", ">i8"),
            ("emb_len", ">i4"),
            ("emb_head", ">i4", (5,)),
            ("emb", [("len", ">i4"), ("value", ">f4")], (128,)),
            ("box_len", ">i4"),
            ("box_head", ">i4", (5,)),
            ("box", [("len", ">i4"), ("value", ">i4")], (4,)),
            ("image_len", ">i4"),
        ]
    )
    out = np.zeros(n, row)
    out["fields"] = 5
    out["id_len"] = out["identity_len"] = 8
    out["id"] = np.arange(1, n + 1)
    out["identity_id"] = owner + 1
    out["emb_len"] = 20 + 128 * 8
    out["emb_head"] = (1, 0, 700, 128, 1)
    out["emb"]["len"] = 4
    out["emb"]["value"] = rows
    out["box_len"] = 20 + 4 * 8
    out["box_head"] = (1, 0, 23, 4, 1)
    out["box"]["len"] = 4
    out["box"]["value"] = (0, 0, 100, 100)
    out["image_len"] = 0
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    return header + out.tobytes() + b"\xff\xff"


def write_gallery(url: str, rows: np.ndarray, owner: np.ndarray, people: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY identities (id, display_name) FROM STDIN") as copy:
            copy.write("".join(f"{i + 1}\tperson {i}\n" for i in range(people)))
        data = copy_rows(rows, owner)
        with cur.copy(
            "COPY face_samples (id, identity_id, embedding, box, image_jpeg)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            step = 32 << 20
            for start in range(0, len(data), step):
                copy.write(data[start : start + step])
        cur.execute("SELECT setval('identities_id_seq', %s)", (people,))
        cur.execute("SELECT setval('face_samples_id_seq', %s)", (len(rows),))
    return time.perf_counter() - started


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def decision(match) -> int | None:
    return match.identity_id


def run_size(
    size: int,
    stats,
    base_url: str,
    redis_client: redis.Redis,
    *,
    queries: int,
    threshold: float,
    k: int,
    index: IndexSettings,
    row_load: bool,
) -> dict:
    rng = np.random.default_rng(size)
    rows, owner, centres = synthetic_gallery(stats, size, PER_PERSON, rng)
    people = len(centres)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(base_url, options=f"-csearch_path={schema}")
    result: dict = {"size": size, "identities": people}
    try:
        apply_migrations(url)
        result["write_s"] = write_gallery(url, rows, owner, people)
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE face_samples")
            conn.commit()
        pool = open_pool(url)
        pool.wait(10)
        with pool.connection() as conn:
            start = time.perf_counter()
            snapshot = identities.load_gallery_binary(conn)
            result["load_binary_s"] = time.perf_counter() - start
            assert len(snapshot.sample_ids) == size
            if row_load:
                start = time.perf_counter()
                identities.load_gallery(conn)
                result["load_rows_s"] = time.perf_counter() - start
                result["load_speedup"] = result["load_rows_s"] / result["load_binary_s"]
        del snapshot
        result.update(search(rows, owner, centres, stats, rng, queries, threshold, k, index))
        result.update(enrolment(pool, redis_client, stats, rng, threshold, k, index))
        pool.close()
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return result


def search(rows, owner, centres, stats, rng, queries, threshold, k, index) -> dict:
    names = {i: f"p{i}" for i in range(len(centres))}
    tracemalloc.start()  # numpy reports its arrays to tracemalloc; so do Python's objects
    start = time.perf_counter()
    exact = Gallery(rows, owner, names, k=k, index=IndexSettings(approximate_from=0))
    build_exact = time.perf_counter() - start
    arrays = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert not exact.approximate
    start = time.perf_counter()
    approximate = Gallery(
        rows,
        owner,
        {i: f"p{i}" for i in range(len(centres))},
        k=k,
        index=replace(index, approximate_from=1),
    )
    build_index = time.perf_counter() - start
    assert approximate.approximate
    # faiss's own memory is not traced: the index counts it (`nbytes`).
    index_bytes = approximate._index.nbytes() if approximate._index else 0
    half = queries // 2
    genuine = centres[rng.integers(0, len(centres), half)] + noise(stats, half, rng)
    strangers = rng.multivariate_normal(stats.mean, stats.between, queries - half).astype(
        np.float32
    ) + noise(stats, queries - half, rng)
    probes = np.concatenate([genuine, strangers])
    exact_ms, approx_ms, same_decision, same_best = [], [], 0, 0
    for probe in track(probes, description=f"{len(rows):,}: 1:N exact and approximate"):
        t = time.perf_counter()
        reference = exact.identify(probe, threshold=threshold, exact=True)
        exact_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        found = approximate.identify(probe, threshold=threshold)
        approx_ms.append((time.perf_counter() - t) * 1000)
        same_decision += found.identity_id == reference.identity_id
        loose_ref = exact.identify(probe, threshold=np.inf, exact=True).identity_id
        same_best += approximate.identify(probe, threshold=np.inf).identity_id == loose_ref
    p50, p99 = percentiles(approx_ms)
    ref_p50, ref_p99 = percentiles(exact_ms)
    n = len(rows)
    del exact, approximate
    return {
        "build_exact_s": build_exact,
        "build_index_s": build_index,
        "memory_mb_per_million_exact": arrays / n * 1e6 / 2**20,
        "memory_mb_per_million_index": index_bytes / n * 1e6 / 2**20,
        "search_p50_ms": p50,
        "search_p99_ms": p99,
        "exact_p50_ms": ref_p50,
        "exact_p99_ms": ref_p99,
        "p99_speedup_vs_exact": ref_p99 / p99,
        "recall_at_1_decision": same_decision / len(probes),
        "recall_at_1_best_identity": same_best / len(probes),
        "queries": len(probes),
    }


def enrolment(pool, redis_client, stats, rng, threshold, k, index) -> dict:
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    holder = GalleryHolder(pool, redis_client, keys, k=k, index=index)
    start = time.perf_counter()
    holder.ensure_loaded()
    load_with_index = time.perf_counter() - start
    enrol_ms, erase_ms = [], []
    try:
        for n in track(range(5), description="enrolment to recognisable"):
            centre = rng.multivariate_normal(stats.mean, stats.between).astype(np.float32)
            photos = centre + noise(stats, 3, rng)
            probe = photos.mean(axis=0)  # their face: nearer their photos than anyone's
            start = time.perf_counter()
            with pool.connection() as conn:
                person = identities.create_identity(conn, display_name=f"new {n}")
                for photo in photos:
                    identities.add_face_sample(
                        conn,
                        identity_id=person["id"],
                        embedding=photo,
                        box=(0, 0, 9, 9),
                        image_jpeg=b"j",
                    )
                conn.commit()
            announce_change(redis_client, keys, person["id"])
            match = holder.refresh().identify(probe, threshold=np.inf)
            enrol_ms.append((time.perf_counter() - start) * 1000)
            assert match.identity_id == person["id"], "the new person was not found"
            start = time.perf_counter()
            with pool.connection() as conn:
                identities.delete_identity(conn, person["id"])
                conn.commit()
            announce_change(redis_client, keys, person["id"])
            gone = holder.refresh().identify(photos[0], threshold=np.inf)
            erase_ms.append((time.perf_counter() - start) * 1000)
            assert gone.identity_id != person["id"], "the erased person was still found"
    finally:
        for key in redis_client.scan_iter(f"{keys.prefix}:*"):
            redis_client.delete(key)
    return {
        "holder_load_s": load_with_index,
        "approximate": holder.gallery.approximate,
        "enrol_to_recognisable_ms_max": max(enrol_ms),
        "enrol_to_recognisable_ms_median": float(np.median(enrol_ms)),
        "erase_to_gone_ms_max": max(erase_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 (slow: minutes)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lfw-images", type=int, default=700, help="photos measured (cached)")
    parser.add_argument("--no-row-load", action="store_true", help="skip the old loader")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    settings = RecognitionSettings()
    base_url = settings.require_database_url()
    redis_client = redis.Redis.from_url(settings.require_redis_url())
    stats = measure(*lfw_embeddings(args.data or settings.data_dir, limit=args.lfw_images))
    print(
        f"LFW statistics: {stats.images} photos of {stats.people} people; mean distance "
        f"{stats.intra_distance:.3f} within a person, {stats.inter_distance:.3f} between people"
    )
    index = IndexSettings.of(settings)
    sizes = list(args.sizes) + ([1_000_000] if args.million else [])
    results = []
    for size in sizes:
        r = run_size(
            size,
            stats,
            base_url,
            redis_client,
            queries=args.queries,
            threshold=settings.recognition_threshold,
            k=settings.recognition_score_k,
            index=index,
            row_load=not args.no_row_load,
        )
        results.append(r)
        print(
            f"{size:>9,}: load {r['load_binary_s']:.2f} s binary"
            + (
                f" vs {r['load_rows_s']:.2f} s row by row (x{r['load_speedup']:.1f})"
                if "load_rows_s" in r
                else ""
            )
            + f"; service load {r['holder_load_s']:.2f} s"
            f" ({'index' if r['approximate'] else 'exact'}); memory"
            f" {r['memory_mb_per_million_exact']:.0f} MB/M exact,"
            f" {r['memory_mb_per_million_index']:.0f} MB/M more for the index\n"
            f"           1:N p50 {r['search_p50_ms']:.2f} ms p99 {r['search_p99_ms']:.2f} ms"
            f" (exact p50 {r['exact_p50_ms']:.2f} p99 {r['exact_p99_ms']:.2f} ms,"
            f" x{r['p99_speedup_vs_exact']:.1f} at p99); recall@1 decision"
            f" {r['recall_at_1_decision']:.3f}, best identity"
            f" {r['recall_at_1_best_identity']:.3f}; enrolment to recognisable"
            f" {r['enrol_to_recognisable_ms_max']:.0f} ms max, erasure to gone"
            f" {r['erase_to_gone_ms_max']:.0f} ms max"
        )
    summary = {
        "lfw_photos": stats.images,
        "lfw_people": stats.people,
        "intra_distance": round(stats.intra_distance, 4),
        "inter_distance": round(stats.inter_distance, 4),
        "index": index.kind,
        "nprobe": index.nprobe,
        "candidates": index.candidates,
        "approximate_from": index.approximate_from,
        "results": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in results
        ],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
