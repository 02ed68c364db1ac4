"""What each pipeline stage costs on a real video, and Watchpost's per-frame face work against
the naive loop (detect every frame + embed every face), measured in the same run.

    .venv/bin/python -m benchmarks.stage_costs [VIDEO] [--frames N]

Prints a table, then one JSON line with every figure. No Redis or Postgres involved: this is the
compute per frame that the services do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from services.liveness.blink import face_ear
from watchpost.images import decode_jpeg, to_grey
from watchpost.settings import default_data_dir
from watchpost.vision.faces import detect_faces, embed_face, landmarks_68
from watchpost.vision.tracking import FaceTracker


def read_frames(video: Path, limit: int, width: int = 640) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        if w > width:
            bgr = cv2.resize(bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not frames:
        raise SystemExit(f"no frames read from {video}")
    return frames


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


def median_ms(fn, frames, **kwargs) -> float:
    return statistics.median(timed(fn, f, **kwargs)[0] for f in frames)


def naive_loop(frames) -> float:
    """The tutorial loop: detect on every frame (upsample 1), embed every face."""
    start = time.perf_counter()
    for rgb in frames:
        for box in detect_faces(rgb, upsample=1):
            embed_face(rgb, box)
    return len(frames) / (time.perf_counter() - start)


def watchpost_loop(frames, detect_every: int = 5, recheck_frames: int = 60) -> float:
    """Capture + recognition + liveness work per frame as the services do it (without I/O)."""
    tracker = FaceTracker()
    last_embedded: dict[str, int] = {}
    start = time.perf_counter()
    for i, rgb in enumerate(frames):
        detections = detect_faces(rgb, upsample=1) if i % detect_every == 0 else None
        tracked = tracker.update(rgb, detections)
        if not tracked:
            continue
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        decoded = decode_jpeg(jpeg)
        gray = to_grey(decoded)
        for t in tracked:
            face_ear(landmarks_68(gray, t.box))
            if i - last_embedded.get(t.track_id, -recheck_frames) >= recheck_frames:
                embed_face(decoded, t.box)
                last_embedded[t.track_id] = i
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "video", nargs="?", default=str(default_data_dir() / "video/talking_blinks_720p.mp4")
    )
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frames = read_frames(Path(args.video), args.frames)
    sample = frames[:: max(1, len(frames) // 20)]
    box = next((b[0] for f in sample if (b := detect_faces(f, upsample=1))), None)
    embed_face(frames[0], box or (0, 0, 64, 64))  # load the models outside the timings
    landmarks_68(frames[0], box or (0, 0, 64, 64))
    tracker_ms = []
    if box:
        tracker = FaceTracker()
        tracker.update(frames[0], [box])
        tracker_ms = [timed(tracker.update, f, None)[0] for f in frames[1:30]]
    figures = {
        "video": Path(args.video).name,
        "frames": len(frames),
        "frame_size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "hog_upsample0_ms": median_ms(detect_faces, sample, upsample=0),
        "hog_upsample1_ms": median_ms(detect_faces, sample, upsample=1),
        "embed_ms": statistics.median(timed(embed_face, f, box)[0] for f in sample)
        if box
        else None,
        "landmarks68_ms": statistics.median(timed(landmarks_68, f, box)[0] for f in sample)
        if box
        else None,
        "tracker_update_ms": statistics.median(tracker_ms) if tracker_ms else None,
        "jpeg_encode_ms": median_ms(lambda f: cv2.imencode(".jpg", f), sample),
        "naive_fps": naive_loop(frames),
        "watchpost_fps": watchpost_loop(frames),
    }
    figures["speedup_vs_naive"] = figures["watchpost_fps"] / figures["naive_fps"]
    for key, value in figures.items():
        print(f"{key:>20}: {value:.2f}" if isinstance(value, float) else f"{key:>20}: {value}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
