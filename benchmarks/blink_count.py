"""Blinks per tracked face in any video: the fused EAR + eye-state CNN signal that the liveness
service uses, against the EAR alone (the reference) in the same run.

    .venv/bin/python -m benchmarks.blink_count VIDEO [--detect-every 5]

Faces are found and tracked as capture does (HOG every N frames, correlation tracking between).
Last line: JSON with the blink count per track for both signals and the cost per frame.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from services.liveness.blink import BlinkDetector
from services.liveness.evidence import EvidenceReader
from watchpost.images import to_grey
from watchpost.settings import LivenessSettings
from watchpost.vision.faces import detect_faces
from watchpost.vision.tracking import FaceTracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()
    capture = cv2.VideoCapture(str(args.video))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {args.video}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    reader = EvidenceReader(LivenessSettings(liveness_passive=False))
    if reader.eyes is not None:  # load the model outside the timings
        reader.eyes.scores(np.zeros((2, 24, 24), np.uint8))
    tracker = FaceTracker()
    fused: dict[str, BlinkDetector] = {}
    ear_only: dict[str, BlinkDetector] = {}
    frames, eye_seconds = 0, 0.0
    while args.max_frames is None or frames < args.max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        if bgr.shape[1] > 640:
            bgr = cv2.resize(bgr, (640, round(bgr.shape[0] * 640 / bgr.shape[1])))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        detections = detect_faces(rgb, upsample=1) if frames % args.detect_every == 0 else None
        tracked = tracker.update(rgb, detections)
        frames += 1
        if not tracked:
            continue
        started = time.perf_counter()
        readings = reader.read_eyes(to_grey(rgb), [t.box for t in tracked])
        eye_seconds += time.perf_counter() - started
        for face, reading in zip(tracked, readings, strict=True):
            if reading.ear is None:
                continue
            fused.setdefault(face.track_id, BlinkDetector()).update(reading.ear, reading.p_closed)
            ear_only.setdefault(face.track_id, BlinkDetector()).update(reading.ear)
    figures = {
        "video": args.video.name,
        "frames": frames,
        "seconds": round(frames / fps, 2),
        "tracks": {
            track: {"blinks_fused": fused[track].blinks, "blinks_ear_only": ear_only[track].blinks}
            for track in fused
        },
        "eye_reading_ms_per_frame": round(1000 * eye_seconds / max(frames, 1), 3),
    }
    for track, counts in figures["tracks"].items():
        print(
            f"track {track}: {counts['blinks_fused']} blinks fused, "
            f"{counts['blinks_ear_only']} by EAR alone"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
