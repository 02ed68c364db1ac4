"""The whole pipeline against the naive loop, on the same clip, in the same run.

    .venv/bin/python -m benchmarks.pipeline VIDEO ENROL_DIR [--cameras 4] [--realtime]
        [--track-timeout 5] [--width 640] [--detectors hog blazeface hog:0 blazeface:full]
        [--capture-processes 1 2]

`--width` scales the clip to that width first (an MJPEG copy, as capture would scale it), so the
reference and Watchpost read the same 640-px frames. `--detectors` runs Watchpost once per
detector against the one reference: `hog` (the shipped setting), `hog:0` (HOG without
upsampling), `blazeface` (its shipped network) or `blazeface:short` / `blazeface:full`.
`--capture-processes` runs it once per detector and count of capture nodes sharing the cameras
(`watchpost up --capture-processes N`); frames are summed over every node's `/status`, and each
node's cameras and CPU are reported.
Frames per second count every frame capture decoded (with faces or not: the reference loop's
unit), summed over the cameras, over the wall time from adding the cameras to the last frame read
by both consumers.

ENROL_DIR holds `<name>/*.jpg`. The reference is the loop every tutorial writes: for each frame,
HOG detection with one upsampling step on the full frame, a 128-d encoding of every face, the
nearest known encoding within 0.6. Watchpost runs as `watchpost up` does (five processes, real
Redis and Postgres: the local ones, else embedded), the photos are enrolled through the REST API,
then each camera is added through the API with capture unpaced, so frames go in as fast as the
services take them. Reported: frames per second end to end (every frame capture decoded, the
run ending when both consumers have read every frame with faces), latency from the capture of
the frame that completed an alert's evidence to the alert on the websocket (p50, p95), CPU
(share of one core) and peak memory per service, and the speed ratio.

Who was seen is compared twice: by alerts (access granted, strangers) and by sightings, the
record every recognised track leaves (`GET /api/v1/sightings`) whether or not it raised an alert.
Per person: frames the reference named them in, and Watchpost's sightings of them (tracks) with
their checks and agreeing votes; unknown faces likewise. `same_people_by_sightings` says whether
the sightings name exactly the people the reference named. Progress bars show the reference
loop's frames and the frames both consumers have read. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from argparse import Namespace
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import cv2
import httpx
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from websockets.sync.client import connect

from benchmarks.report import print_json
from watchpost.cli import Stack
from watchpost.images import load_rgb
from watchpost.vision.faces import detect_faces, embed_face


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )


def frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()


def reference_loop(video: Path, known: dict[str, list[np.ndarray]], max_frames: int | None) -> dict:
    names, vectors = zip(*[(n, v) for n, vs in known.items() for v in vs], strict=True)
    matrix = np.stack(vectors)
    capture = cv2.VideoCapture(str(video))
    seen: dict[str, int] = {}
    frames = 0
    total = frame_count(video)
    total = min(total, max_frames) if max_frames is not None else total
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("reference loop, frames", total=total or None)
        while max_frames is None or frames < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            for box in detect_faces(rgb, upsample=1):
                distances = np.linalg.norm(matrix - embed_face(rgb, box), axis=1)
                best = int(np.argmin(distances))
                name = names[best] if distances[best] <= 0.6 else "unknown"
                seen[name] = seen.get(name, 0) + 1
            frames += 1
            bar.advance(task)
    seconds = time.perf_counter() - started
    return {"fps": frames / seconds, "frames": frames, "faces_by_identity": seen}


def enrolment_photos(folder: Path) -> dict[str, list[Path]]:
    return {
        p.name: sorted(f for f in p.iterdir() if f.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for p in sorted(folder.iterdir())
        if p.is_dir()
    }


def known_encodings(photos: dict[str, list[Path]]) -> dict[str, list[np.ndarray]]:
    known: dict[str, list[np.ndarray]] = {}
    for name, paths in photos.items():
        for path in paths:
            rgb = load_rgb(path)
            boxes = detect_faces(rgb, upsample=1)
            if boxes:
                known.setdefault(name, []).append(embed_face(rgb, boxes[0]))
    return known


def process_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, peak resident MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return cpu, int(peak.group(1)) / 1024 if peak else 0.0


def processed(url: str, service: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(
        rf'watchpost_messages_processed_total{{service="{service}"}} ([0-9.e+]+)', text
    )
    return float(match.group(1)) if match else 0.0


def free_port_offset(ports: Iterable[int]) -> int:
    """An offset that puts every one of these (default) ports on a free port."""
    wanted = list(ports)
    for _ in range(100):
        offset = 20000 + uuid.uuid4().int % 20000
        if all(_free(port + offset) for port in wanted):
            return offset
    raise SystemExit(f"no free ports for the {len(wanted)} processes")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def capture_totals(statuses: dict[str, list[dict]], cameras: int) -> dict:
    """Frames summed over every capture node's `/status` (a node lists only the cameras it holds
    the lease of), whether all `cameras` have ended, and which cameras each node runs."""
    rows = [row for node in statuses.values() for row in node]
    return {
        "published": sum(r["frames_published"] for r in rows),
        "decoded": sum(r.get("frames_read", 0) for r in rows),
        "ended": len({r["camera_id"] for r in rows}) == cameras
        and all(r["status"] == "ended" for r in rows),
        "cameras_by_node": {n: sorted(r["camera_id"] for r in s) for n, s in statuses.items()},
    }


def unix(iso: str) -> float:
    """Unix seconds of an ISO time as the API and the websocket send it."""
    return datetime.fromisoformat(iso).timestamp()


def latency_stages(api: httpx.Client, alerts: list[tuple[float, dict]]) -> dict:
    """Median ms per stage, from the alerts' stored timestamps: capture of the deciding frame
    -> its verdict published (queueing + recognition or liveness), -> alert stored (aggregator),
    -> alert on the websocket (dashboard)."""
    parts: dict[str, list[float]] = {"to_verdict": [], "to_stored": [], "to_websocket": []}
    for received, alert in alerts:
        details = api.get(f"/api/v1/alerts/{alert['id']}").json()["details"]
        if details.get("evidence_at") is None or details.get("verdict_at") is None:
            continue
        parts["to_verdict"].append(details["verdict_at"] - details["evidence_at"])
        parts["to_stored"].append(unix(alert["created_at"]) - details["verdict_at"])
        parts["to_websocket"].append(received - unix(alert["created_at"]))
    return {k: round(1000 * float(np.median(v)), 1) if v else None for k, v in parts.items()}


def list_all_sightings(api: httpx.Client) -> list[dict]:
    rows: list[dict] = []
    while True:
        params = {"limit": 500, **({"before_id": rows[-1]["id"]} if rows else {})}
        page = api.get("/api/v1/sightings", params=params)
        page.raise_for_status()
        rows += page.json()
        if len(page.json()) < 500:
            return rows


def final_sightings(api: httpx.Client, *, deadline: float) -> list[dict]:
    """Every sighting on record, once all have ended (their checks and times are final) or at
    `deadline`, whichever comes first; each says whether it had ended."""
    while True:
        rows = list_all_sightings(api)
        if all(r["ended"] for r in rows) or time.time() >= deadline:
            break
        time.sleep(0.5)
    return [
        {
            "name": r["display_name"],
            "camera": r["camera_id"],
            "track": r["track_id"],
            "checks": r["checks"],
            "votes": r["votes"],
            "best_distance": r["best_distance"],
            "liveness": r["liveness"],
            "ended": r["ended"],
            "seconds": (
                datetime.fromisoformat(r["last_seen"]) - datetime.fromisoformat(r["first_seen"])
            ).total_seconds(),
        }
        for r in sorted(rows, key=lambda r: r["id"])
    ]


def by_sightings(reference: dict, sightings: list[dict]) -> dict:
    """Per person (None: unknown faces): the reference's frames naming them, and Watchpost's
    sightings (tracks) of them with their checks and agreeing votes."""
    people: dict[str, dict] = {}
    for name, faces in reference["faces_by_identity"].items():
        key = None if name == "unknown" else name
        people.setdefault(str(key), {"name": key})["reference_faces"] = faces
    for row in sightings:
        entry = people.setdefault(str(row["name"]), {"name": row["name"]})
        entry["sightings"] = entry.get("sightings", 0) + 1
        entry["checks"] = entry.get("checks", 0) + row["checks"]
        entry["votes"] = entry.get("votes", 0) + row["votes"]
        entry["cameras"] = sorted({*entry.get("cameras", []), row["camera"]})
    for entry in people.values():
        for field in ("reference_faces", "sightings", "checks", "votes"):
            entry.setdefault(field, 0)
        entry.setdefault("cameras", [])
    return dict(sorted(people.items(), key=lambda kv: (kv[1]["name"] is None, kv[0])))


def scaled_clip(video: Path, width: int, folder: Path) -> Path:
    """An MJPEG copy of `video` at `width` px (the aspect kept, the frame rate the same)."""
    source = cv2.VideoCapture(str(video))
    fps = source.get(cv2.CAP_PROP_FPS) or 30.0
    out = folder / f"{video.stem}_{width}.avi"
    writer = None
    while True:
        ok, bgr = source.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        if w != width:
            bgr = cv2.resize(bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        if writer is None:
            fourcc = cv2.VideoWriter.fourcc(*"MJPG")
            writer = cv2.VideoWriter(str(out), fourcc, fps, (bgr.shape[1], bgr.shape[0]))
        writer.write(bgr)
    source.release()
    if writer is None:
        raise SystemExit(f"no frames in {video}")
    writer.release()
    return out


def detector_environment(spec: str) -> dict[str, str]:
    """The capture settings a `--detectors` entry stands for."""
    name, _, option = spec.partition(":")
    if name == "hog":
        return {"WATCHPOST_CAPTURE_DETECTOR": "hog", "WATCHPOST_CAPTURE_UPSAMPLE": option or "1"}
    if name == "blazeface":  # blazeface[:NETWORK][:FOLLOW], e.g. blazeface:short:correlation
        environment = {"WATCHPOST_CAPTURE_DETECTOR": "blazeface"}
        network, _, follow = option.partition(":")
        if network:
            environment["WATCHPOST_CAPTURE_BLAZEFACE_NETWORK"] = network
        if follow:
            environment["WATCHPOST_CAPTURE_FOLLOW"] = follow
        return environment
    raise SystemExit(
        f"unknown detector {spec!r}: hog[:UPSAMPLE] or blazeface[:NETWORK][:detector|correlation]"
    )


def run_watchpost(
    video: Path,
    photos: dict[str, list[Path]],
    cameras: int,
    realtime: bool,
    track_timeout: float,
    detector: str = "hog",
    capture_processes: int = 1,
) -> dict:
    home = Path(tempfile.mkdtemp(prefix="wp-bench-"))
    args = Namespace(camera=None, home=str(home), capture_processes=capture_processes)
    args.port_offset = 0  # the default ports first, to find an offset that frees them all
    args.port_offset = free_port_offset(port for _, port in Stack(args).layout().values())
    stack = Stack(args)
    url = {name: stack.urls(name)[name] for name in ("recognition", "liveness", "dashboard")}
    capture_nodes = stack.urls("capture")  # every node's /status: each lists its own cameras
    os.environ.update(
        {
            "WATCHPOST_STREAM_PREFIX": f"wpb-{uuid.uuid4().hex[:8]}",
            # Unpaced: as fast as the services take frames (throughput). Paced: the clip's own
            # frame rate, as a camera delivers it, with stale frames skipped (latency).
            "WATCHPOST_CAPTURE_REALTIME": "true" if realtime else "false",
            "WATCHPOST_FRAME_MAX_AGE_SECONDS": "3" if realtime else "0",
            "WATCHPOST_CAPTURE_CAMERAS_CHECK_SECONDS": "0.2",
            "WATCHPOST_DATA_DIR": str(
                home / "no-demo"
            ),  # no demo camera: cameras come from the API
            # ... on the benchmark's video, which must then be within the allow-list.
            "WATCHPOST_CAMERA_SOURCE_DIRS": json.dumps([str(video.resolve().parent)]),
            "WATCHPOST_LOG_LEVEL": "WARNING",
            # Tracks end this long after their last frame (60 s shipped), so the sightings read
            # at the end are final; a track in view gets news on every frame it is in.
            "WATCHPOST_AGGREGATOR_TRACK_TIMEOUT_SECONDS": str(track_timeout),
            **detector_environment(detector),
        }
    )
    try:
        stack.start()
        key = stack.make_key("admin", "benchmark")
        auth = {"Authorization": f"Bearer {key}"}
        api = httpx.Client(base_url=url["dashboard"], timeout=60, headers=auth)
        api.delete("/api/v1/cameras/demo")
        for name, paths in photos.items():
            identity = api.post("/api/v1/identities", json={"display_name": name}).json()
            files = [("file", (p.name, p.read_bytes())) for p in paths]
            api.post(f"/api/v1/identities/{identity['id']}/faces?largest=true", files=files)
        alerts: list[tuple[float, dict]] = []
        ws = connect(
            f"{url['dashboard'].replace('http', 'ws', 1)}/api/v1/alerts/ws",
            additional_headers=auth,
        )

        def receive() -> None:
            for message in ws:
                alerts.append((time.time(), json.loads(message)["alert"]))

        threading.Thread(target=receive, daemon=True).start()
        usage_before = {n: process_usage(p.pid)[0] for n, p in stack.children.items()}
        started = time.time()
        for index in range(cameras):
            api.post(
                "/api/v1/cameras",
                json={"id": f"bench-{index}", "name": f"bench {index}", "source": str(video)},
            )
        with progress() as bar:
            task = bar.add_task("Watchpost, frames read by both consumers", total=None)
            while True:  # until every camera ended and both consumers have read every frame
                totals = capture_totals(
                    {
                        name: httpx.get(f"{node}/status", headers=auth).json()
                        for name, node in capture_nodes.items()
                    },
                    cameras,
                )
                published, decoded = totals["published"], totals["decoded"]
                read = min(
                    processed(url["recognition"], "recognition"),
                    processed(url["liveness"], "liveness"),
                )
                bar.update(task, total=max(published, 1), completed=min(read, published))
                if totals["ended"] and read >= published:
                    break
                time.sleep(0.05)
        wall = time.time() - started
        time.sleep(1.0)  # the last verdicts reach the aggregator and the websocket
        usage = {n: process_usage(p.pid) for n, p in stack.children.items()}
        # Pipeline latency: from the capture of the frame whose verdict completed the evidence
        # (for access granted, the frame after the blink) to the alert on the websocket. The
        # time from the snapshot's frame also counts the wait for evidence (a blink, a second
        # look at a stranger), which no speed-up removes.
        # Alerts arrive in their public shape: ISO times, the evidence time in `details`.
        latencies = [
            received - (alert["details"].get("evidence_at") or unix(alert["captured_at"]))
            for received, alert in alerts
        ]
        since_snapshot = [received - unix(alert["captured_at"]) for received, alert in alerts]
        stages = latency_stages(api, alerts)
        seen = final_sightings(api, deadline=time.time() + track_timeout + 10)
        ws.close()
    finally:
        stack.stop()
    return {
        "detector": detector,
        "capture_processes": capture_processes,
        # Which cameras each capture node ran (their leases): split 2+2 over two nodes.
        "cameras_by_capture_process": totals["cameras_by_node"],
        "fps": decoded / wall,  # every decoded frame, as the reference loop counts
        "frames_read": decoded,
        "frames_in_clips": frame_count(video) * cameras,
        "fps_with_faces": published / wall,
        "frames_with_faces": published,
        "seconds": wall,
        "alert_latency_p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else None,
        "alert_latency_p95_ms": 1000 * float(np.percentile(latencies, 95)) if latencies else None,
        "latency_stages_p50_ms": stages,
        "alert_since_snapshot_frame_p50_ms": (
            1000 * float(np.percentile(since_snapshot, 50)) if since_snapshot else None
        ),
        "alerts": [
            {
                "kind": a["kind"],
                "name": a.get("display_name"),
                "camera": a["camera_id"],
                "track": a.get("track_id"),
                "reason": a.get("reason"),
            }
            for _, a in alerts
        ],
        "sightings": seen,
        "cpu_share_of_one_core": {n: (u[0] - usage_before[n]) / wall for n, u in usage.items()},
        "peak_memory_mb": {n: u[1] for n, u in usage.items()},
    }


def compare(reference: dict, ours: dict) -> dict:
    """Who each side saw, and the speed ratio, for one Watchpost run against the reference."""
    named_by_reference = sorted(n for n in reference["faces_by_identity"] if n != "unknown")
    named_by_watchpost = sorted({a["name"] for a in ours["alerts"] if a["name"]})
    named_by_sightings = sorted({s["name"] for s in ours["sightings"] if s["name"]})
    people = by_sightings(reference, ours["sightings"])
    # A stranger alert where the reference knew every face is a disagreement too.
    strangers = sum(a["kind"] == "unknown_person" for a in ours["alerts"])
    reference_strangers = reference["faces_by_identity"].get("unknown", 0)
    return {
        "detector": ours["detector"],
        "capture_processes": ours["capture_processes"],
        "watchpost": ours,
        "speedup": ours["fps"] / reference["fps"],
        "identities_reference": named_by_reference,
        "identities_watchpost": named_by_watchpost,
        "stranger_alerts": strangers,
        "same_people": named_by_reference == named_by_watchpost
        and (strangers == 0 or reference_strangers > 0),
        "identities_sightings": named_by_sightings,
        "unknown_sightings": sum(s["name"] is None for s in ours["sightings"]),
        "same_people_by_sightings": named_by_reference == named_by_sightings,
        "people": list(people.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("enrol", type=Path)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--max-frames", type=int, default=None, help="for the reference loop")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play the clip at its frame rate (latency) instead of unpaced (throughput)",
    )
    parser.add_argument(
        "--track-timeout",
        type=float,
        default=5.0,
        help="seconds without news before a track (and its sighting) ends (shipped: 60)",
    )
    parser.add_argument("--width", type=int, default=None, help="scale the clip to this first")
    parser.add_argument(
        "--detectors",
        nargs="+",
        default=["hog"],
        help="one Watchpost run per detector: hog[:UPSAMPLE], blazeface[:short|full]",
    )
    parser.add_argument(
        "--capture-processes",
        type=int,
        nargs="+",
        default=[1],
        choices=range(1, 65),
        metavar="N",
        help="capture nodes sharing the cameras; one run per count (and detector)",
    )
    args = parser.parse_args()
    for spec in args.detectors:
        detector_environment(spec)  # an unknown one fails before the long runs
    video = args.video
    if args.width:
        video = scaled_clip(video, args.width, Path(tempfile.mkdtemp(prefix="wp-clip-")))
    photos = enrolment_photos(args.enrol)
    reference = reference_loop(video, known_encodings(photos), args.max_frames)
    runs = [
        compare(
            reference,
            run_watchpost(
                video, photos, args.cameras, args.realtime, args.track_timeout, detector, processes
            ),
        )
        for detector in args.detectors
        for processes in args.capture_processes
    ]
    figures = {
        "video": args.video.name,
        "width": args.width,
        "cameras": args.cameras,
        "capture_processes": args.capture_processes,
        "mode": "realtime" if args.realtime else "unpaced",
        "reference": reference,
        "runs": runs,
    }
    print(f"reference loop {reference['fps']:.1f} fps ({reference['frames']} frames)")
    for run in runs:
        ours = run["watchpost"]
        nodes = ours["cameras_by_capture_process"]
        cpu = " + ".join(f"{ours['cpu_share_of_one_core'][n]:.2f}" for n in nodes)
        print(
            f"Watchpost, {run['detector']}, {run['capture_processes']} capture process(es): "
            f"{ours['fps']:.1f} fps with {args.cameras} camera(s) ({run['speedup']:.1f}x the "
            f"reference; {ours['frames_read']} of {ours['frames_in_clips']} frames decoded); "
            f"alert latency p50 {ours['alert_latency_p50_ms']} ms, p95 "
            f"{ours['alert_latency_p95_ms']} ms; cameras "
            f"{'+'.join(str(len(c)) for c in nodes.values())}, CPU capture "
            f"{cpu} of a core; "
            f"same people: {run['same_people']} by alerts, {run['same_people_by_sightings']} by "
            "sightings"
        )
        for person in run["people"]:
            print(
                f"  {person['name'] or 'unknown'}: reference {person['reference_faces']} faces; "
                f"Watchpost {person['sightings']} sighting(s), "
                f"{person['votes']}/{person['checks']} checks agreeing, cameras "
                f"{', '.join(person['cameras']) or '-'}"
            )
    print_json(figures)


if __name__ == "__main__":
    main()
