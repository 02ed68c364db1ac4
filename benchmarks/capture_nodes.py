"""Cameras on every core: the same cameras run by one capture process, then shared by several
(what `watchpost up --capture-processes N` and `docker compose up --scale capture=N` do), in one
run. Each camera plays the clip once, unpaced, through the real capture loop (decode, scale,
HOG every `capture_detect_every` frames, track, JPEG, publish to Redis); the figure is every
frame of every camera over the wall time, and the reference is one process.

    .venv/bin/python -m benchmarks.capture_nodes [--cameras 4] [--processes 1 2] [--clip VIDEO]

Needs a Redis (WATCHPOST_REDIS_URL, default the local one); its keys go under a fresh prefix
that is deleted afterwards. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time
import uuid
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path

import cv2
import redis
from rich.console import Console
from rich.progress import track

from benchmarks.report import print_json
from watchpost.settings import CaptureSettings

DEFAULT_CLIP = "video/two_people_1080p.mp4"


def frames_in(clip: Path) -> int:
    video = cv2.VideoCapture(str(clip))
    try:
        return int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        video.release()


def run_node(redis_url: str, prefix: str, clip: str, cameras: list[str]) -> None:
    """One capture process: its cameras in threads, as the supervisor runs them."""
    from services.capture.loop import CaptureLoop

    settings = CaptureSettings(redis_url=redis_url, stream_prefix=prefix, capture_realtime=False)
    client = redis.Redis.from_url(redis_url)
    loops = [
        CaptureLoop(
            settings, redis_client=client, pool=None, source=clip, camera_id=c, trusted=True
        )
        for c in cameras
    ]
    threads = [
        threading.Thread(target=loop.run, args=(threading.Event(),), kwargs={"burst": True})
        for loop in loops
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [loop.camera for loop in loops if loop.status != "ended"]
    if failed:
        raise SystemExit(f"cameras did not play to the end: {failed}")


def measure(redis_url: str, clip: Path, cameras: int, processes: int) -> float:
    """Seconds for `cameras` plays of the clip shared by `processes` capture processes (model
    loading excluded: every process loads before the clock starts)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    names = [f"cam{n}" for n in range(cameras)]
    spawn = multiprocessing.get_context("spawn")
    start_line = spawn.Barrier(processes + 1)
    workers = [
        spawn.Process(
            target=_after_barrier,
            args=(start_line, redis_url, prefix, str(clip), names[n::processes]),
        )
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    start_line.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if any(worker.exitcode for worker in workers):
        raise RuntimeError(f"a capture process failed: {[w.exitcode for w in workers]}")
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    return elapsed


def _after_barrier(
    barrier: BarrierType, redis_url: str, prefix: str, clip: str, cameras: list[str]
) -> None:
    from watchpost.vision.models import warm_up

    warm_up(detector=True)  # load before the clock starts
    barrier.wait()
    run_node(redis_url, prefix, clip, cameras)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CaptureSettings().data_dir / DEFAULT_CLIP)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"no video at {args.clip} (set WATCHPOST_DATA_DIR or name one with --clip)")
    redis_url = os.environ.get("WATCHPOST_REDIS_URL", "redis://127.0.0.1:6379/0")
    frames = frames_in(args.clip) * args.cameras
    counts = sorted(set([1, *args.processes]))  # one process is the reference
    results = {}
    for processes in track(counts, "capture processes", console=Console(stderr=True)):
        results[processes] = frames / measure(redis_url, args.clip, args.cameras, processes)
    reference = results[1]
    print(
        f"{args.cameras} cameras x {frames // args.cameras} frames of {args.clip.name}, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'processes':>9}  {'fps (all cameras)':>17}  {'x one process':>13}")
    for processes, fps in results.items():
        print(f"{processes:>9}  {fps:>17.1f}  {fps / reference:>13.2f}")
    print_json(
        {
            "benchmark": "capture_nodes",
            "clip": args.clip.name,
            "cameras": args.cameras,
            "cores": os.cpu_count(),
            "fps": {str(p): fps for p, fps in results.items()},
            "ratio_to_one_process": {str(p): fps / reference for p, fps in results.items()},
        }
    )


if __name__ == "__main__":
    main()
