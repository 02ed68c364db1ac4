"""The capture-side levers, each measured against the setting Watchpost ships with, in one run:
frame width and HOG upsampling (cost and faces found), how often to detect versus track (cost
per frame and how many tracks one person becomes), JPEG quality on the bus (encode and decode
cost, bytes per frame, and how far the embedding and eye-aspect ratio of the decoded frame
move from the uncompressed one).

    .venv/bin/python -m benchmarks.levers [VIDEO ...] [--frames N]

Default videos: the talking clip (one face, close) and the crowd clip (many small faces). Prints
a table per lever, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.report import print_json
from benchmarks.stage_costs import read_frames
from services.liveness.blink import face_ear
from watchpost.images import to_grey
from watchpost.progress import bar
from watchpost.settings import CaptureSettings, default_data_dir
from watchpost.vision.faces import detect_faces, embed_face, landmarks_68
from watchpost.vision.tracking import FaceTracker

SHIPPED = CaptureSettings()  # the defaults every ratio is taken against


def ms_per_call(fn, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def detection(frames_by_width: dict[int, list[np.ndarray]]) -> list[dict]:
    """HOG at each width and upsampling: median ms and faces found per frame (the most thorough
    setting is the recall reference: its face count is what the others can miss)."""
    rows = []
    for width, frames in frames_by_width.items():
        for upsample in (0, 1):
            sample = frames[:: max(1, len(frames) // 25)]
            found = [len(detect_faces(f, upsample=upsample)) for f in sample]
            rows.append(
                {
                    "width": width,
                    "upsample": upsample,
                    "hog_ms": ms_per_call(
                        lambda f, u=upsample: detect_faces(f, upsample=u), sample
                    ),
                    "faces_per_frame": float(np.mean(found)),
                }
            )
    best = max(r["faces_per_frame"] for r in rows) or 1.0
    for row in rows:
        row["faces_vs_most_found"] = row["faces_per_frame"] / best
    return rows


def detect_interval(frames: list[np.ndarray]) -> list[dict]:
    """Detect every N frames and track between: capture cost per frame and tracks started."""
    rows = []
    for every in (1, 3, 5, 10, 15):
        tracker = FaceTracker()
        started = set()
        start = time.perf_counter()
        for i, rgb in enumerate(frames):
            detections = (
                detect_faces(rgb, upsample=SHIPPED.capture_upsample) if i % every == 0 else None
            )
            started |= {t.track_id for t in tracker.update(rgb, detections)}
        per_frame = (time.perf_counter() - start) * 1000 / len(frames)
        rows.append({"detect_every": every, "ms_per_frame": per_frame, "tracks": len(started)})
    return rows


def jpeg_quality(frames: list[np.ndarray]) -> list[dict]:
    """What the bus's JPEG does to size, time and to the numbers computed from the frame."""
    sample = frames[:: max(1, len(frames) // 15)]
    faces = [(f, b[0]) for f in sample if (b := detect_faces(f, upsample=1))]
    clean = [(embed_face(f, box), face_ear(landmarks_68(to_grey(f), box))) for f, box in faces]
    rows = []
    for quality in (50, 70, 85, 95):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in sample]
        encoded = [cv2.imencode(".jpg", f, params)[1] for f in bgr]
        drift, ear_drift = [], []
        for (frame, box), (embedding, ear) in zip(faces, clean, strict=True):
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)[1]
            bgr_decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            assert bgr_decoded is not None  # OpenCV's own JPEG
            decoded = cv2.cvtColor(bgr_decoded, cv2.COLOR_BGR2RGB)
            drift.append(float(np.linalg.norm(embed_face(decoded, box) - embedding)))
            if ear is not None:
                after = face_ear(landmarks_68(to_grey(decoded), box))
                if after is not None:
                    ear_drift.append(abs(after - ear))
        rows.append(
            {
                "quality": quality,
                "kb_per_frame": float(np.mean([e.size for e in encoded])) / 1024,
                "encode_ms": ms_per_call(lambda f, p=params: cv2.imencode(".jpg", f, p), bgr),
                "decode_ms": ms_per_call(lambda e: cv2.imdecode(e, cv2.IMREAD_COLOR), encoded),
                "embedding_drift": float(np.mean(drift)) if drift else None,
                "ear_drift": float(np.mean(ear_drift)) if ear_drift else None,
            }
        )
    return rows


def table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    print("  " + "  ".join(f"{k:>18}" for k in keys))
    for row in rows:
        cells = [f"{v:>18.3f}" if isinstance(v, float) else f"{v!s:>18}" for v in row.values()]
        print("  " + "  ".join(cells))


def main() -> None:
    data = default_data_dir() / "video"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "videos",
        nargs="*",
        type=Path,
        default=[data / "talking_blinks_720p.mp4", data / "crowd_walk_1080p.mp4"],
    )
    parser.add_argument("--frames", type=int, default=90)
    args = parser.parse_args()
    figures: dict = {"shipped": {
        "max_width": SHIPPED.capture_max_width,
        "upsample": SHIPPED.capture_upsample,
        "detect_every": SHIPPED.capture_detect_every,
        "jpeg_quality": SHIPPED.capture_jpeg_quality,
    }}  # fmt: skip
    # Redrawn between the levers only, never while one is timed.
    progress = bar(auto_refresh=False)
    progress.start()
    task = progress.add_task("levers", total=4 * len(args.videos))

    def step(description: str) -> None:
        progress.update(task, description=description, refresh=True)

    for video in args.videos:
        step(f"{video.name}: reading frames")
        by_width = {w: read_frames(video, args.frames, width=w) for w in (480, 640, 960)}
        embed_face(by_width[640][0], (0, 0, 80, 80))  # load the models outside the timings
        landmarks_68(to_grey(by_width[640][0]), (0, 0, 80, 80))
        shipped_frames = by_width[SHIPPED.capture_max_width]
        result: dict = {}
        stages: list[tuple[str, Callable[[Any], Any], Any]] = [
            ("detection", detection, by_width),
            ("detect_interval", detect_interval, shipped_frames),
            ("jpeg", jpeg_quality, shipped_frames),
        ]
        for name, measure, frames in stages:
            progress.update(task, advance=1)
            step(f"{video.name}: {name}")
            result[name] = measure(frames)
        progress.update(task, advance=1, refresh=True)
        shipped = next(
            r
            for r in result["detect_interval"]
            if r["detect_every"] == SHIPPED.capture_detect_every
        )
        every_frame = result["detect_interval"][0]
        result["detect_interval_speedup"] = every_frame["ms_per_frame"] / shipped["ms_per_frame"]
        figures[video.name] = result
        print(f"\n== {video.name} ({args.frames} frames)")
        table("width x upsampling", result["detection"])
        table("detect every N frames (track between)", result["detect_interval"])
        table("JPEG quality on the bus", result["jpeg"])
        print(f"detecting every {SHIPPED.capture_detect_every} frames instead of every frame: "
              f"{result['detect_interval_speedup']:.1f}x cheaper per frame")  # fmt: skip

    progress.stop()
    print_json(figures, digits=4)


if __name__ == "__main__":
    main()
