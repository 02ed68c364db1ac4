"""Where one Redis and one PostgreSQL would limit a site: frames per Redis core, alerts and
sighting updates per second.

    .venv/bin/python -m benchmarks.bus_capacity [--frames 3000] [--alerts 1000] [--clients 1 4]

Redis: real frames of the shared talking clip, scaled to capture's 640-px width and JPEG-encoded
at capture's quality, each with one camera-resolution face crop (capture sends one every few
frames, so this is the heavy case), are published as capture publishes them (`publish`), then
read and acknowledged by the two groups that read frames (recognition and liveness). Redis's own
CPU time for all of it (INFO cpu, user + system, before and after) gives the frames one Redis
core carries, and with the entry size the MB/s. The reference in the same run is the same bytes
XADDed as one raw field, so the ratio is what the message layout costs Redis. Pipelined in
batches of 20 on both sides, so the client is not what is measured.

PostgreSQL: alerts written as the aggregator writes them (`alerts.upsert_alert`, with a snapshot
and a face JPEG), and sighting updates (`sightings.upsert_sighting`, a track's periodic update),
from 1 and from 4 client threads; the reference is a bare INSERT of the same bytes into a table
with no index. A fresh key prefix and schema each run; needs the local Redis and PostgreSQL
(WATCHPOST_TEST_REDIS_URL / WATCHPOST_TEST_DATABASE_URL). Last line: JSON.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import psycopg
import redis
from psycopg.conninfo import make_conninfo

from benchmarks.report import print_json
from watchpost.db import alerts, apply_migrations, identities, open_pool, sightings
from watchpost.geometry import Box
from watchpost.keys import Group, Keys
from watchpost.messages import AlertKind, FaceCrop, Frame, TrackedFace
from watchpost.progress import bar
from watchpost.settings import CaptureSettings, default_data_dir
from watchpost.streams import ensure_group, publish

REDIS = os.environ.get("WATCHPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get(
    "WATCHPOST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH = 20
READERS = (Group.RECOGNITION, Group.LIVENESS)


def clip_frames(path: Path, count: int, width: int, quality: int) -> list[tuple[bytes, bytes]]:
    """(bus JPEG at `width`, 256-px face-sized crop JPEG at camera resolution) per frame."""
    video = cv2.VideoCapture(str(path))
    out: list[tuple[bytes, bytes]] = []
    while len(out) < count:
        ok, frame = video.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        scaled = cv2.resize(frame, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        side = min(h, w) // 2
        crop = cv2.resize(frame[:side, (w - side) // 2 : (w + side) // 2], (256, 256))
        out.append(
            (
                cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes(),
                cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
            )
        )
    video.release()
    if not out:
        raise SystemExit(f"no frame could be read from {path}")
    return out


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drain(client: redis.Redis, stream: str, group: str) -> int:
    """Read and acknowledge every entry as `group`, in batches; returns how many."""
    read = 0
    while True:
        reply: Any = client.xreadgroup(group, "bench", {stream: ">"}, count=BATCH)
        if not reply or not reply[0][1]:
            return read
        ids = [entry_id for entry_id, _ in reply[0][1]]
        client.xack(stream, group, *ids)
        read += len(ids)


def redis_run(client: redis.Redis, stream: str, send, count: int, progress) -> dict[str, float]:
    """Redis CPU microseconds per frame for publishing `count` frames to `stream` with
    `send(pipe, i)` and reading them through both groups, and the mean entry size."""
    for group in READERS:
        ensure_group(client, stream, group, "$")
    task = progress.add_task(f"redis {stream}", total=count)
    before, size, read = redis_cpu(client), 0.0, [0] * len(READERS)
    for start in range(0, count, BATCH):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + BATCH)):
                send(pipe, i)
            pipe.execute()
        if not size:
            size = float(client.memory_usage(stream) or 0) / max(1, client.xlen(stream))
        # Read as the services do, as it arrives (capture trims the stream to a few hundred).
        read = [n + drain(client, stream, group) for n, group in zip(read, READERS, strict=True)]
        progress.advance(task, min(BATCH, count - start))
    spent = redis_cpu(client) - before
    client.delete(stream)
    if read != [count] * len(READERS):
        raise SystemExit(f"{stream}: published {count}, read {read}")
    return {"cpu_us_per_frame": spent / count * 1e6, "bytes_per_entry": size}


def redis_figures(frames: list[tuple[bytes, bytes]], count: int, progress) -> dict[str, Any]:
    client = redis.Redis.from_url(REDIS)
    keys = Keys(f"wpb-{uuid.uuid4().hex[:8]}")
    box = Box(left=200, top=60, right=330, bottom=190)
    faces = [TrackedFace(track_id="t1", box=box, detected=True)]
    crop = FaceCrop(
        track_id="t1", square=Box(left=0, top=0, right=540, bottom=540), camera_width=1280
    )

    def ours(pipe, i):
        bus, face = frames[i % len(frames)]
        frame = Frame(
            camera_id="door", seq=i, captured_at=time.time(), source_time=i / 30,
            width=640, height=360, faces=faces, crops=[crop],
        )  # fmt: skip
        publish(pipe, keys.frames.of("door"), frame, image=bus, attachments={crop.attachment: face})

    def raw(stream):
        def send(pipe, i):
            bus, face = frames[i % len(frames)]
            pipe.xadd(stream, {"b": bus + face}, maxlen=keys.frames.maxlen, approximate=True)

        return send

    first = redis_run(client, f"{keys.prefix}:raw1", raw(f"{keys.prefix}:raw1"), count, progress)
    mine = redis_run(client, keys.frames.of("door"), ours, count, progress)
    again = redis_run(client, f"{keys.prefix}:raw2", raw(f"{keys.prefix}:raw2"), count, progress)
    reference = (first["cpu_us_per_frame"] + again["cpu_us_per_frame"]) / 2
    per_core = 1e6 / mine["cpu_us_per_frame"]
    return {
        "frames_per_redis_core": per_core,
        "mb_per_s_per_redis_core": per_core * mine["bytes_per_entry"] / 1e6,
        "cpu_us_per_frame": mine["cpu_us_per_frame"],
        "raw_cpu_us_per_frame": reference,
        "ratio_to_raw": mine["cpu_us_per_frame"] / reference,
        "bytes_per_entry": mine["bytes_per_entry"],
        "cameras_at_10fps_per_redis_core": per_core / 10,
    }


def timed_threads(work, count: int, clients: int, progress, label: str) -> float:
    """Rows per second doing `work(i)` for i in range(count) from `clients` threads."""
    task = progress.add_task(label, total=count)

    def run(i: int) -> None:
        work(i)
        progress.advance(task)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(count)))
    return count / (time.perf_counter() - start)


def postgres_figures(
    frames: list[tuple[bytes, bytes]], count: int, clients: list[int], progress
) -> dict[str, Any]:
    schema = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    database = make_conninfo(POSTGRES, options=f"-csearch_path={schema}")
    apply_migrations(database)
    pool = open_pool(database, min_size=1, max_size=max(clients))
    snapshot, face = frames[0]
    try:
        with pool.connection() as conn:
            person = identities.create_identity(conn, display_name="Bench Person")["id"]
            conn.execute("CREATE TABLE bare (id bigserial, a bytea, b bytea, t timestamptz)")
        out: dict[str, Any] = {}
        for n in clients:
            run = uuid.uuid4().hex[:6]

            def alert(i: int, run: str = run) -> None:
                with pool.connection() as conn:
                    alerts.upsert_alert(
                        conn, kind=AlertKind.ACCESS_GRANTED, camera_id="door",
                        track_id=f"{run}-{i}", captured_at=time.time(), identity_id=person,
                        display_name="Bench Person", distance=0.4, liveness="live",
                        reason="bench", details={"votes": 2}, snapshot_jpeg=snapshot,
                        face_jpeg=face,
                    )  # fmt: skip

            def sighting(i: int, run: str = run) -> None:
                now = time.time()
                with pool.connection() as conn:
                    sightings.upsert_sighting(
                        conn, camera_id="door", track_id=f"{run}-{i % 50}", identity_id=person,
                        first_seen=now - 5, last_seen=now, checks=i, votes=i, best_distance=0.4,
                        liveness="live",
                    )  # fmt: skip

            def bare(i: int) -> None:
                with pool.connection() as conn:
                    conn.execute(
                        "INSERT INTO bare (a, b, t) VALUES (%s, %s, now())", (snapshot, face)
                    )

            reference = timed_threads(bare, count, n, progress, f"bare insert x{n}")
            written = timed_threads(alert, count, n, progress, f"alerts x{n}")
            updated = timed_threads(sighting, count, n, progress, f"sighting updates x{n}")
            out[f"clients_{n}"] = {
                "alerts_per_s": written,
                "sighting_updates_per_s": updated,
                "bare_inserts_per_s": reference,
                "alerts_ratio_to_bare": written / reference,
            }
        return out
    finally:
        pool.close()
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--clip", type=Path, default=default_data_dir() / "video" / "talking_blinks_720p.mp4"
    )
    args = parser.parse_args()
    capture = CaptureSettings()
    frames = clip_frames(args.clip, 100, capture.capture_max_width, capture.capture_jpeg_quality)
    with bar() as progress:
        bus = redis_figures(frames, args.frames, progress)
        database = postgres_figures(frames, args.alerts, args.clients, progress)
    print(
        f"Redis: {bus['frames_per_redis_core']:.0f} frames/s per Redis core"
        f" ({bus['mb_per_s_per_redis_core']:.1f} MB/s, {bus['bytes_per_entry'] / 1e3:.0f} kB"
        f" an entry; {bus['ratio_to_raw']:.2f}x the CPU of the same bytes as one raw field)"
    )
    for name, figures in database.items():
        print(
            f"PostgreSQL, {name}: {figures['alerts_per_s']:.0f} alerts/s"
            f" ({figures['alerts_ratio_to_bare']:.2f}x bare inserts),"
            f" {figures['sighting_updates_per_s']:.0f} sighting updates/s"
        )
    load = os.getloadavg()[0]
    print_json({"benchmark": "bus_capacity", "load_1min": load, "redis": bus, "postgres": database})


if __name__ == "__main__":
    main()
