"""Presentation-attack detection per presentation (ISO/IEC 30107-3), for the whole liveness
verdict and for the passive check alone.

    .venv/bin/python -m benchmarks.pad_evaluation ROOT [--fps 10]
    .venv/bin/python -m benchmarks.pad_evaluation --shared {nuaa,videos,all}

ROOT holds `real/` and one folder per attack type (for example `print/`, `replay/`). In each,
every video, every folder of images (an image sequence, played in file-name order at `--fps`)
and every single image is one presentation. A presentation is judged exactly as a kiosk burst
is (`services.liveness.burst`): the largest face per frame, blinks, the motion and edge cues
between frames, the passive check on a camera-resolution crop every third frame.

`--shared nuaa` plays each session of NUAA's training split (`liveness/nuaa_train`: real webcam
sessions and printed-photo attacks) as a sequence; `--shared videos` plays the shared videos
(real) and the lestari15 phone replay (replay). `--passive-model` swaps the passive check's
weights, e.g. a model trained without the fold under test.

Reported per attack type: APCER (attacks judged live), the share flagged as spoof; for bona fide
presentations: BPCER (judged spoof) and the share not judged live (no access either); the passive
check alone: APCER and BPCER of the presentation's mean score at its threshold. The worst attack
type is named. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from services.liveness.blink import BlinkDetector
from services.liveness.burst import burst_liveness
from services.liveness.evidence import EvidenceReader
from watchpost.progress import bar
from watchpost.settings import LivenessSettings

VIDEO = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAX_SIDE = 1280  # frames larger than this are scaled down (a 1080p clip costs 2x for nothing)


class Presentation:
    def __init__(self, name: str, kind: str, paths: list[Path], fps: float) -> None:
        self.name, self.kind, self.paths, self.fps = name, kind, paths, fps

    def frames(self) -> list[np.ndarray]:
        if len(self.paths) == 1 and self.paths[0].suffix.lower() in VIDEO:
            capture = cv2.VideoCapture(str(self.paths[0]))
            self.fps = capture.get(cv2.CAP_PROP_FPS) or self.fps
            bgrs = []
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                bgrs.append(bgr)
        else:
            bgrs = [b for b in (cv2.imread(str(p)) for p in self.paths) if b is not None]
        out = []
        for bgr in bgrs:
            h, w = bgr.shape[:2]
            if max(h, w) > MAX_SIDE:
                scale = MAX_SIDE / max(h, w)
                size = (round(w * scale), round(h * scale))
                # interpolation by name: the third positional argument is `dst`
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return out


def from_root(root: Path, fps: float) -> list[Presentation]:
    found = []
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for item in sorted(kind_dir.iterdir()):
            if item.is_dir():
                images = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE)
                if images:
                    found.append(Presentation(item.name, kind_dir.name, images, fps))
            elif item.suffix.lower() in VIDEO | IMAGE:
                found.append(Presentation(item.name, kind_dir.name, [item], fps))
    if not any(p.kind == "real" for p in found):
        raise SystemExit(f"{root} has no real/ presentations")
    return found


def shared(which: str, data: Path, fps: float) -> list[Presentation]:
    found: list[Presentation] = []
    if which in ("nuaa", "all"):
        for folder, kind in (("ClientRaw", "real"), ("ImposterRaw", "print")):
            sessions: dict[str, list[tuple[tuple[str, str, int], Path]]] = defaultdict(list)
            for path in (data / "liveness/nuaa_train" / folder).rglob("*.jpg"):
                subject, glasses, pos, session, picture = path.stem.split("_")
                key = (glasses, pos, int(picture))
                sessions[f"nuaa-{kind}-{subject}-{session}"].append((key, path))
            # In time order: by picture number (as a number: by name, 101 comes before 12),
            # each position/lighting take of the session in turn.
            found += [
                Presentation(n, kind, [p for _, p in sorted(items)], fps)
                for n, items in sorted(sessions.items())
            ]
    if which in ("videos", "all"):
        lestari = data / "liveness/extra/lestari15__CNN-face-detection"
        for path in sorted((data / "video").glob("*.mp4")):
            found.append(Presentation(path.stem, "real", [path], fps))
        found.append(Presentation("lestari-real", "real", [lestari / "real/videos/real.mp4"], fps))
        found.append(
            Presentation("lestari-replay", "replay", [lestari / "spoof/videos/fake.mp4"], fps)
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?")
    parser.add_argument("--shared", choices=["nuaa", "videos", "all"])
    parser.add_argument("--fps", type=float, default=10.0, help="of image sequences")
    parser.add_argument("--passive-model", type=Path, help="passive weights to use instead")
    parser.add_argument("--limit", type=int, default=0, help="at most N presentations per kind")
    args = parser.parse_args()
    if (args.root is None) == (args.shared is None):
        parser.error("give ROOT or --shared")
    settings = LivenessSettings()
    if args.shared:
        data = settings.data_dir
        presentations = shared(args.shared, data, args.fps)
    else:
        presentations = from_root(args.root, args.fps)
    if args.limit:
        by_kind: dict[str, list[Presentation]] = defaultdict(list)
        for p in presentations:
            by_kind[p.kind].append(p)
        presentations = [p for kind in by_kind.values() for p in kind[: args.limit]]
    reader = EvidenceReader(settings, passive_model=args.passive_model)
    reader.warm_up()
    results = []
    with bar() as progress:
        task = progress.add_task("presentations", total=len(presentations))
        for p in presentations:
            report = burst_liveness(
                p.frames(),
                fps=p.fps,
                reader=reader,
                detector=BlinkDetector(
                    closed_ratio=settings.liveness_closed_ratio,
                    closed_ear_max=settings.liveness_closed_ear_max,
                    max_blink_seconds=settings.liveness_max_blink_seconds,
                ),
            )
            results.append((p, report))
            progress.advance(task)
    threshold = reader.policy.spoof_threshold
    figures: dict = {"presentations": len(results), "passive_threshold": threshold, "kinds": {}}
    misjudged = []
    for kind in sorted({p.kind for p, _ in results}):
        mine = [(p, r) for p, r in results if p.kind == kind]
        scored = [r.passive_score for _, r in mine if r.passive_score is not None]
        row = {
            "presentations": len(mine),
            "live": float(np.mean([r.state == "live" for _, r in mine])),
            "spoof": float(np.mean([r.state == "spoof" for _, r in mine])),
            "passive_scored": len(scored),
            "passive_flagged": float(np.mean([s >= threshold for s in scored])) if scored else None,
        }
        figures["kinds"][kind] = row
        for p, r in mine:
            wrong = r.state == "live" if kind != "real" else r.state == "spoof"
            if wrong:
                misjudged.append(f"{kind} {p.name}: {r.state} ({r.reason})")
    attacks = {k: v for k, v in figures["kinds"].items() if k != "real"}
    real = figures["kinds"].get("real")
    figures["apcer_per_type"] = {k: v["live"] for k, v in attacks.items()}
    figures["worst_apcer"] = max(figures["apcer_per_type"].values(), default=None)
    figures["worst_attack_type"] = max(attacks, key=lambda k: attacks[k]["live"], default=None)
    figures["bpcer"] = real["spoof"] if real else None
    figures["bona_fide_not_live"] = 1 - real["live"] if real else None
    figures["passive_apcer_per_type"] = {
        k: None if v["passive_flagged"] is None else 1 - v["passive_flagged"]
        for k, v in attacks.items()
    }
    figures["passive_bpcer"] = real["passive_flagged"] if real else None
    figures["misjudged"] = misjudged
    print(f"{'kind':>10} {'n':>4} {'live':>6} {'spoof':>6} {'passive flagged':>16}")
    for kind, row in figures["kinds"].items():
        flagged = "-" if row["passive_flagged"] is None else f"{row['passive_flagged']:.3f}"
        print(
            f"{kind:>10} {row['presentations']:>4} {row['live']:>6.3f} {row['spoof']:>6.3f} "
            f"{flagged:>16}"
        )
    print(
        f"whole verdict: worst APCER {figures['worst_apcer']} ({figures['worst_attack_type']}), "
        f"BPCER {figures['bpcer']}, bona fide not live {figures['bona_fide_not_live']}"
    )
    for p, r in results:
        cues = ", ".join(f"{c.name} {c.score:.2f}/{c.samples}" for c in r.cues)
        print(f"  {p.kind:>8} {p.name:<28} {r.state:<9} blinks {r.blinks}  {cues}")
    for line in misjudged:
        print("  misjudged:", line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
