"""Blink recall and false blinks on annotated videos, at camera resolution and at downscaled
copies with small eyes: the fused EAR + eye-state CNN signal the liveness service uses, and the
EAR alone (the reference) in the same run.

    .venv/bin/python -m benchmarks.blink_count [VIDEO_NAME ...] [--eye-px 24 16] [--legacy]

Annotations: `benchmarks/annotations/blinks.json` (per video: fps, per visible person the frame
ranges of each blink, ranges too ambiguous to judge, and the eye width in px; how they were made
is in that file). Faces are found and tracked as capture does (HOG every N frames at most 640 px
wide, correlation tracking between); each track is assigned to the annotated person whose face
centre is nearest. A blink read at frame f is a hit when f falls in an annotated blink's range
or up to `--slack` seconds after it (the detector reports a blink when the eyes re-open; at a
low frame rate the slack is at least two frame intervals, the first open frame and the one that
confirms it); read
blinks in an ambiguous range are ignored; every other read blink is a false blink. `--eye-px N`
adds a copy of each video scaled down so that its largest annotated eyes are N px wide.
`--legacy` reads as the service did before (patches 2.0 eye widths, no upscaling of small
faces, eyes under 12 px refused, closures up to 15 frames whatever the frame rate), for the
before/after comparison. Last line: JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from services.liveness.blink import BlinkDetector
from services.liveness.evidence import EvidenceReader
from watchpost.images import to_grey
from watchpost.progress import bar
from watchpost.settings import LivenessSettings, default_data_dir
from watchpost.vision.faces import detect_faces
from watchpost.vision.tracking import FaceTracker

ANNOTATIONS = Path(__file__).resolve().parent / "annotations" / "blinks.json"
DETECT_WIDTH = 640


@dataclass
class TrackRun:
    centres: list = field(default_factory=list)
    frames: int = 0
    readable: int = 0
    problems: dict = field(default_factory=dict)
    fused_at: list = field(default_factory=list)
    ear_at: list = field(default_factory=list)


def load_annotations(path: Path = ANNOTATIONS) -> dict:
    return json.loads(path.read_text())["videos"]


def read_video(
    path: Path,
    scale: float,
    reader: EvidenceReader,
    *,
    detect_every: int,
    detector_kwargs: dict,
    progress: Progress,
    label: str,
    step: int = 1,
    max_frames: int | None = None,
) -> tuple[dict[str, TrackRun], float, int, float]:
    """Every `step`-th frame (step 6 turns 30 fps into 5 fps) through detection, tracking, eye
    reading and two blink detectors per track; blinks are reported by source frame index."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    task = progress.add_task(label, total=total)
    tracker = FaceTracker()
    runs: dict[str, TrackRun] = {}
    fused: dict[str, BlinkDetector] = {}
    ear_only: dict[str, BlinkDetector] = {}
    index, eye_seconds = 0, 0.0
    while max_frames is None or index < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % step:
            index += 1
            progress.advance(task)
            continue
        if scale != 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        detections = None
        if (index // step) % detect_every == 0:
            detections = detect_faces(rgb, upsample=1, scale=min(1.0, DETECT_WIDTH / w))
        tracked = tracker.update(rgb, detections)
        at = index / fps
        if tracked:
            started = time.perf_counter()
            readings = reader.read_eyes(to_grey(rgb), [t.box for t in tracked])
            eye_seconds += time.perf_counter() - started
            for face, reading in zip(tracked, readings, strict=True):
                run = runs.setdefault(face.track_id, TrackRun())
                left, top, right, bottom = face.box
                run.centres.append(((left + right) / 2 / w, (top + bottom) / 2 / h))
                run.frames += 1
                if reading.ear is None:
                    reason = (reading.problem or "unknown").split(":")[0]
                    run.problems[reason] = run.problems.get(reason, 0) + 1
                    continue
                run.readable += 1
                one = fused.setdefault(face.track_id, BlinkDetector(**detector_kwargs))
                if one.update(at, reading.ear, reading.p_closed):
                    run.fused_at.append(index)
                ref = ear_only.setdefault(face.track_id, BlinkDetector(**detector_kwargs))
                if ref.update(at, reading.ear):
                    run.ear_at.append(index)
        index += 1
        progress.advance(task)
    return runs, fps, index, eye_seconds


def score(person: dict, read_at: list[int], fps: float, slack: float) -> tuple[int, int]:
    """(annotated blinks found, false blinks) for one person's read blink frames."""
    extra = math.ceil(slack * fps)
    blinks = [tuple(b) for b in person.get("blinks", [])]
    ambiguous = [tuple(b) for b in person.get("ambiguous", [])]
    found: set[tuple[int, int]] = set()
    false = 0
    for frame in read_at:
        hit = next((b for b in blinks if b not in found and b[0] <= frame <= b[1] + extra), None)
        if hit is not None:
            found.add(hit)
        elif not any(a[0] <= frame <= a[1] + extra for a in ambiguous):
            false += 1
    return len(found), false


def assign(runs: dict[str, TrackRun], people: list[dict]) -> dict[str, int | None]:
    """Each track to the annotated person whose face centre (relative) is nearest, if close."""
    out: dict[str, int | None] = {}
    for track, run in runs.items():
        centre = np.median(np.asarray(run.centres), axis=0)
        distances = [np.linalg.norm(centre - np.asarray(p["centre"])) for p in people]
        best = int(np.argmin(distances)) if distances else None
        out[track] = best if best is not None and distances[best] < 0.15 else None
    return out


def evaluate(
    video: dict, runs: dict[str, TrackRun], fps: float, slack: float, step: int = 1
) -> dict:
    """Recall and false blinks per annotated person of one run (`step`: frames skipped)."""
    slack = max(slack, 2 * step / fps)
    people = video.get("people", [])
    owner = assign(runs, people)
    rows = []
    for number, person in enumerate(people):
        tracks = [t for t, p in owner.items() if p == number]
        fused = sorted(f for t in tracks for f in runs[t].fused_at)
        ear = sorted(f for t in tracks for f in runs[t].ear_at)
        frames = sum(runs[t].frames for t in tracks)
        readable = sum(runs[t].readable for t in tracks)
        problems: dict[str, int] = {}
        for t in tracks:
            for reason, n in runs[t].problems.items():
                problems[reason] = problems.get(reason, 0) + n
        row = {
            "person": person["who"],
            "annotated": person.get("annotated", True),
            "blinks": len(person.get("blinks", [])),
            "frames_tracked": frames,
            "frames_readable": readable,
            "unreadable": problems,
            "read_fused": fused,
            "read_ear": ear,
        }
        if row["annotated"]:
            row["found_fused"], row["false_fused"] = score(person, fused, fps, slack)
            row["found_ear"], row["false_ear"] = score(person, ear, fps, slack)
        rows.append(row)
    strays = [t for t, p in owner.items() if p is None and runs[t].frames >= 5]
    judged = [r for r in rows if r["annotated"]]
    total = sum(r["blinks"] for r in judged)

    def recall(key: str) -> float | None:
        return round(sum(r[key] for r in judged) / total, 3) if total else None

    return {
        "people": rows,
        "blinks": total,
        "recall_fused": recall("found_fused"),
        "recall_ear": recall("found_ear"),
        "false_fused": sum(r["false_fused"] for r in judged),
        "false_ear": sum(r["false_ear"] for r in judged),
        "unassigned_tracks": len(strays),
        "unassigned_blinks_fused": sum(len(runs[t].fused_at) for t in strays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", help="video names from the annotations (default all)")
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--eye-px", type=float, nargs="*", default=[16.0])
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--slack", type=float, default=0.3)
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--max-frames", type=int, default=None, help="per video (smoke runs)")
    parser.add_argument(
        "--fps", type=float, default=None, help="also read every n-th frame, about this rate"
    )
    parser.add_argument("--no-native", action="store_true", help="only the downscaled copies")
    args = parser.parse_args()
    data = args.data or default_data_dir()
    videos = load_annotations(args.annotations)
    unknown = set(args.videos) - set(videos)
    if unknown:
        raise SystemExit(f"not in {args.annotations}: {sorted(unknown)}")
    names = args.videos or list(videos)
    settings = LivenessSettings(liveness_passive=False)
    reader = EvidenceReader(
        settings.model_copy(update={"liveness_min_eye_px": 12.0}) if args.legacy else settings
    )
    if args.legacy:
        reader.eye_framing, reader.landmark_face_px = 2.0, 0
    if reader.eyes is not None:  # load the model outside the timings
        reader.eyes.scores(np.zeros((2, 24, 24), np.uint8))
    results = []
    with bar() as progress:
        for name in names:
            video = videos[name]
            path = data / video["path"]
            if not path.exists():
                raise SystemExit(f"missing {path}: is WATCHPOST_DATA_DIR set?")
            widest = max((p["eye_px"] for p in video["people"] if p.get("eye_px")), default=None)
            scales = [] if args.no_native else [1.0]
            scales += [
                round(target / widest, 3)
                for target in args.eye_px
                if widest and target < widest * 0.9
            ]
            steps = [1] + ([max(1, round(video["fps"] / args.fps))] if args.fps else [])
            for scale, step in [(scale, step) for step in steps for scale in scales]:
                fps = video["fps"]
                kwargs = (
                    {"max_blink_seconds": 14.5 * step / fps}  # 15 frames
                    if args.legacy
                    else {"max_blink_seconds": settings.liveness_max_blink_seconds}
                )
                runs, fps, frames, seconds = read_video(
                    path,
                    scale,
                    reader,
                    detect_every=args.detect_every,
                    detector_kwargs=kwargs,
                    progress=progress,
                    label=f"{name} x{scale:g} 1/{step}",
                    step=step,
                    max_frames=args.max_frames,
                )
                figures = evaluate(video, runs, fps, args.slack, step)
                figures.update(
                    video=name,
                    scale=scale,
                    fps=round(fps / step, 2),
                    eye_px=round(widest * scale, 1) if widest else None,
                    frames=frames,
                    eye_reading_ms_per_frame=round(1000 * seconds / max(frames, 1), 2),
                )
                results.append(figures)
    for r in results:
        annotated = any(p["annotated"] for p in r["people"])
        found = f"false blinks {r['false_fused']} fused / {r['false_ear']} EAR alone"
        if r["recall_fused"] is not None:
            found = (
                f"recall {r['recall_fused']:.0%} fused / {r['recall_ear']:.0%} EAR alone "
                f"of {r['blinks']} blinks, {found}"
            )
        elif annotated:
            found = f"no blink annotated, {found}"
        else:
            found = f"not annotated; blinks read on {r['unassigned_tracks']} tracks: "
            found += str(r["unassigned_blinks_fused"])
        print(f"{r['video']} x{r['scale']:g} at {r['fps']:g} fps (eyes {r['eye_px']} px): {found}")
        for p in r["people"]:
            print(
                f"  {p['person']}: readable {p['frames_readable']}/{p['frames_tracked']} frames, "
                f"read at {p['read_fused']}, unreadable {p['unreadable']}"
            )
    judged = [r for r in results if r["recall_fused"] is not None]
    summary = {
        "mode": "legacy" if args.legacy else "current",
        "worst_recall_fused": min((r["recall_fused"] for r in judged), default=None),
        "total_false_fused": sum(r["false_fused"] for r in results),
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
