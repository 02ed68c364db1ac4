"""The dashboard's enrolment check at scale: asking recognition's gallery against reading it all.

    WATCHPOST_DATA_DIR=/work/shared/data WATCHPOST_DATABASE_URL=postgresql://... \\
      nice -n 10 .venv/bin/python -m benchmarks.enrolment_check [--size 100000] [--checks 20]

A synthetic gallery (benchmarks/face_statistics.py, 4 samples per identity, one binary COPY into
a schema of its own, as benchmarks/gallery_scale.py), a real recognition service on it (its
HTTP app on a local port, gallery loaded), and new faces to check: half a new photo of an
enrolled person (checked for that person), half a new person. Per face, the check each way:
- before (ratio base): what the dashboard did until now: read every sample from PostgreSQL
  (the binary loader) and measure the face against the person's own photos and everyone else's;
- now: `services.dashboard.enrolment.nearest_in_gallery`, one call to recognition's
  `/v1/gallery/nearest`, which places the face in the gallery it holds in memory.
Both answers are compared (the nearest own distance, the nearest other identity), and the
latency of a check is reported as p50/max with the ratio. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psycopg
import uvicorn
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from pydantic import SecretStr

from benchmarks.face_statistics import lfw_embeddings, measure, noise, synthetic_gallery
from benchmarks.gallery_scale import PER_PERSON, write_gallery
from services.dashboard.enrolment import nearest_in_gallery
from services.recognition.main import create_app
from watchpost.db import apply_migrations, identities
from watchpost.progress import track
from watchpost.settings import RecognitionSettings


def full_read_check(conn, identity_id: int, embedding: np.ndarray) -> tuple[float | None, int]:
    """The check as the dashboard ran it before: every sample read, then numpy."""
    snapshot = identities.load_gallery_binary(conn)
    mine = snapshot.identity_ids == identity_id
    own = snapshot.embeddings[mine]
    others, other_ids = snapshot.embeddings[~mine], snapshot.identity_ids[~mine]
    own_nearest = float(np.linalg.norm(own - embedding, axis=1).min()) if len(own) else None
    closest = int(np.argmin(np.linalg.norm(others - embedding, axis=1)))
    return own_nearest, int(other_ids[closest])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=20, help="faces checked each way")
    parser.add_argument("--lfw-images", type=int, default=700)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    base = RecognitionSettings()
    base_url = base.require_database_url()
    stats = measure(*lfw_embeddings(args.data or base.data_dir, limit=args.lfw_images))
    rng = np.random.default_rng(args.size)
    rows, owner, centres = synthetic_gallery(stats, args.size, PER_PERSON, rng)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(base_url, options=f"-csearch_path={schema}")
    token = secrets.token_urlsafe(24)
    server = None
    try:
        apply_migrations(url)
        write_gallery(url, rows, owner, len(centres))
        settings = base.model_copy(
            update={
                "database_url": url,
                "stream_prefix": f"bench-{uuid.uuid4().hex[:8]}",
                "dashboard_service_token": SecretStr(token),
            }
        )
        port = 20_000 + os.getpid() % 10_000
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
        )
        threading.Thread(target=server.run, daemon=True).start()
        recognition = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{recognition}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        ready_s = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {token}"}

        half = args.checks // 2
        people = rng.integers(0, len(centres), half)
        faces = np.concatenate(
            [
                centres[people] + noise(stats, half, rng),
                rng.multivariate_normal(stats.mean, stats.between, args.checks - half).astype(
                    np.float32
                )
                + noise(stats, args.checks - half, rng),
            ]
        )
        # Database ids are the synthetic identity numbers + 1; a new person has none (-1).
        targets = [int(p) + 1 for p in people] + [-1] * (args.checks - half)
        before_ms, now_ms, agree = [], [], 0
        with psycopg.connect(url, row_factory=dict_row) as conn:
            for face, target in track(
                list(zip(faces, targets, strict=True)), "enrolment checks, both ways"
            ):
                t = time.perf_counter()
                own, other = full_read_check(conn, target, face)
                before_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                place = nearest_in_gallery(
                    face,
                    None if target < 0 else target,
                    recognition_url=recognition,
                    headers=headers,
                )
                now_ms.append((time.perf_counter() - t) * 1000)
                same_own = (own is None and place.own_nearest is None) or (
                    own is not None
                    and place.own_nearest is not None
                    and abs(own - place.own_nearest) < 1e-4
                )
                agree += same_own and place.other is not None and place.other.identity_id == other
    finally:
        if server is not None:
            server.should_exit = True
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    result = {
        "size": args.size,
        "checks": args.checks,
        "load_average": os.getloadavg()[0],
        "recognition_ready_s": ready_s,
        "before_full_read_p50_ms": float(np.median(before_ms)),
        "before_full_read_max_ms": max(before_ms),
        "now_recognition_p50_ms": float(np.median(now_ms)),
        "now_recognition_max_ms": max(now_ms),
        "p50_speedup": float(np.median(before_ms) / np.median(now_ms)),
        "same_answer": agree,
    }
    print(
        f"{args.size:,} samples: check by a full read p50 {result['before_full_read_p50_ms']:.0f}"
        f" ms (max {result['before_full_read_max_ms']:.0f}); asking recognition p50"
        f" {result['now_recognition_p50_ms']:.1f} ms (max {result['now_recognition_max_ms']:.1f});"
        f" x{result['p50_speedup']:.0f}; same answer {agree}/{args.checks};"
        f" load average {result['load_average']:.1f}"
    )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
