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
import copy
import json
import pickle
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.liveness.blink import BlinkDetector
from services.liveness.burst import burst_evidence, judge_burst
from services.liveness.evidence import EvidenceReader
from services.liveness.training import loso
from services.liveness.verdict import LivenessPolicy, ParallaxMode, TrackEvidence
from watchpost.contracts import LivenessReport
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


@dataclass
class Read:
    """One presentation's evidence, as read (saved by `--save-evidence`, judged again by
    `--evidence` under other parallax levels without reading the frames again). `policy`: the
    reader's, with the passive threshold of the model that scored it."""

    name: str
    kind: str
    frames: int
    with_face: int
    evidence: TrackEvidence
    policy: LivenessPolicy


class _Unpickler(pickle.Unpickler):
    """Evidence saved by `python -m benchmarks.pad_evaluation` names this module `__main__`."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and name == "Read":
            return Read
        return super().find_class(module, name)


def load_reads(paths: list[Path]) -> list[Read]:
    """Evidence files written by `--save-evidence`, in order."""
    reads: list[Read] = []
    for path in paths:
        with path.open("rb") as handle:
            reads += _Unpickler(handle).load()
    return reads


def subject_of(name: str) -> str | None:
    """The NUAA subject of a NUAA session (None for other presentations)."""
    return name.split("-")[2] if name.startswith("nuaa-") else None


def verdict_figures(rows: list[tuple[Read, LivenessReport]]) -> dict:
    """Per presentation, for one policy: per kind the share judged live and spoof; APCER per
    attack type (judged live), the worst; BPCER (real judged spoof), real not judged live."""
    kinds = {}
    for kind in sorted({p.kind for p, _ in rows}):
        mine = [r for p, r in rows if p.kind == kind]
        kinds[kind] = {
            "presentations": len(mine),
            "live": round(float(np.mean([r.state == "live" for r in mine])), 4),
            "spoof": round(float(np.mean([r.state == "spoof" for r in mine])), 4),
        }
    attacks = {k: v for k, v in kinds.items() if k != "real"}
    real = kinds.get("real")
    apcer = {k: v["live"] for k, v in attacks.items()}
    return {
        "kinds": kinds,
        "apcer_per_type": apcer,
        "worst_apcer": max(apcer.values(), default=None),
        "worst_attack_type": max(apcer, key=lambda k: apcer[k], default=None),
        "bpcer": real["spoof"] if real else None,
        "bona_fide_not_live": round(1 - real["live"], 4) if real else None,
    }


def score_figures(scores: list[tuple[str, float | None, float]]) -> dict:
    """One score per presentation (kind, P(attack)-like score or None for no reading, its
    threshold): APCER per attack type and BPCER at the threshold, and BPCER at APCER 5% over
    every attack type (pooled scores)."""
    read = [(k, s, t) for k, s, t in scores if s is not None]
    out: dict = {"read": len(read), "of": len(scores)}
    for kind in sorted({k for k, _, _ in read} - {"real"}):
        mine = [s < t for k, s, t in read if k == kind]
        out[f"apcer_{kind}"] = round(float(np.mean(mine)), 4)
    real = [s >= t for k, s, t in read if k == "real"]
    out["bpcer"] = round(float(np.mean(real)), 4) if real else None
    labels = [int(k != "real") for k, _, _ in read]
    if 0 < sum(labels) < len(labels):
        pooled = [s for _, s, _ in read]
        out["bpcer_at_apcer5"] = round(loso.bpcer_at_apcer(pooled, labels, 0.05), 4)
    return out


def read_all(args, settings: LivenessSettings) -> list[Read]:
    """Every presentation's evidence: from saved files (`--evidence`), or read from its frames."""
    if args.evidence:
        return load_reads(args.evidence)
    if args.shared:
        presentations = shared(args.shared, settings.data_dir, args.fps)
    else:
        presentations = from_root(args.root, args.fps)
    if args.limit:
        by_kind: dict[str, list[Presentation]] = defaultdict(list)
        for p in presentations:
            by_kind[p.kind].append(p)
        presentations = [p for kind in by_kind.values() for p in kind[: args.limit]]
    reader = EvidenceReader(settings, passive_model=args.passive_model)
    reader.warm_up()
    reads = []
    with bar() as progress:
        task = progress.add_task("presentations", total=len(presentations))
        for p in presentations:
            frames = p.frames()
            evidence, with_face = burst_evidence(
                frames,
                fps=p.fps,
                reader=reader,
                detector=BlinkDetector(
                    closed_ratio=settings.liveness_closed_ratio,
                    closed_ear_max=settings.liveness_closed_ear_max,
                    max_blink_seconds=settings.liveness_max_blink_seconds,
                ),
            )
            reads.append(Read(p.name, p.kind, len(frames), with_face, evidence, reader.policy))
            progress.advance(task)
    if args.save_evidence:
        args.save_evidence.parent.mkdir(parents=True, exist_ok=True)
        with args.save_evidence.open("wb") as handle:
            pickle.dump(reads, handle)
    return reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?")
    parser.add_argument("--shared", choices=["nuaa", "videos", "all"])
    parser.add_argument("--fps", type=float, default=10.0, help="of image sequences")
    parser.add_argument("--passive-model", type=Path, help="passive weights to use instead")
    parser.add_argument("--limit", type=int, default=0, help="at most N presentations per kind")
    parser.add_argument(
        "--parallax",
        nargs="+",
        choices=["off", "corroborates", "decides"],
        default=["off", "corroborates", "decides"],
        help="parallax modes to judge each presentation's evidence with (one run, same evidence)",
    )
    parser.add_argument(
        "--head-motion",
        choices=["on", "off", "both"],
        default="both",
        help="judge with the head-motion route to live (no blink needed) on, off, or both (each "
        "parallax mode twice, `MODE` with it and `MODE/blink-only` without)",
    )
    parser.add_argument(
        "--held-out",
        nargs="*",
        default=["0006", "0007", "0008", "0009"],
        help="NUAA subjects whose sessions are also reported alone (the parallax level was "
        "chosen on the others: benchmarks/parallax.py)",
    )
    parser.add_argument("--save-evidence", type=Path, help="pickle every presentation's evidence")
    parser.add_argument(
        "--evidence", type=Path, nargs="+", help="judge saved evidence instead of reading frames"
    )
    args = parser.parse_args()
    if sum(x is not None for x in (args.root, args.shared, args.evidence)) != 1:
        parser.error("give ROOT, --shared or --evidence")
    settings = LivenessSettings()
    reads = read_all(args, settings)
    heads = {"on": [True], "off": [False], "both": [True, False]}[args.head_motion]
    # Each variant: a label, its parallax mode, whether the head-motion route is on.
    variants: list[tuple[str, ParallaxMode, bool]] = [
        (mode if head or len(heads) == 1 else f"{mode}/blink-only", mode, head)
        for mode in args.parallax
        for head in heads
    ]
    modes = [label for label, _, _ in variants]

    # The parallax and head-motion levels are the settings' (so saved evidence can be judged at
    # new levels); the rest of each policy is the one its evidence was read with.
    def policy(read: Read, mode: ParallaxMode, head: bool) -> LivenessPolicy:
        return replace(
            read.policy,
            parallax=mode,
            parallax_threshold=settings.liveness_parallax_threshold,
            parallax_min_pairs=settings.liveness_parallax_min_pairs,
            parallax_min_seconds=settings.liveness_parallax_min_seconds,
            motion_min_seconds=settings.liveness_motion_min_seconds,
            head_motion=head,
            head_motion_max_flatness=settings.liveness_head_motion_max_flatness,
            head_motion_max_follow=settings.liveness_head_motion_max_follow,
        )

    judged: dict[str, list[tuple[Read, LivenessReport]]] = {m: [] for m in modes}
    for read in reads:
        for label, mode, head in variants:
            # decide() latches a spoof into the evidence: each policy judges its own copy
            report = judge_burst(
                copy.deepcopy(read.evidence), read.with_face, read.frames, policy(read, mode, head)
            )
            judged[label].append((read, report))
    groups = {"all": lambda r: True}
    if any(subject_of(r.name) for r in reads) and args.held_out:
        held = set(args.held_out)
        groups["nuaa_held_out"] = lambda r: subject_of(r.name) in held
        groups["nuaa_tuning"] = lambda r: subject_of(r.name) not in (held | {None})
    if any(subject_of(r.name) is None for r in reads) and any(subject_of(r.name) for r in reads):
        groups["videos"] = lambda r: subject_of(r.name) is None
    threshold, min_pairs = (
        settings.liveness_parallax_threshold,
        settings.liveness_parallax_min_pairs,
    )
    figures: dict = {
        "presentations": len(reads),
        "passive_thresholds": sorted({r.policy.spoof_threshold for r in reads}),
        "parallax_threshold": threshold,
        "parallax_min_pairs": min_pairs,
        "parallax_min_seconds": settings.liveness_parallax_min_seconds,
        "motion_min_seconds": settings.liveness_motion_min_seconds,
        "default_parallax": settings.liveness_parallax,
        "head_motion": {
            "default": settings.liveness_head_motion,
            "max_flatness": settings.liveness_head_motion_max_flatness,
            "max_follow": settings.liveness_head_motion_max_follow,
        },
        "held_out_subjects": args.held_out,
        "groups": {},
    }
    for group, member in groups.items():
        mine = [r for r in reads if member(r)]
        passive = [(r.kind, r.evidence.mean_passive, r.policy.spoof_threshold) for r in mine]
        flatness = []
        for r in mine:
            cue = r.evidence.parallax.cue(threshold, min_pairs, decides=False)
            enough = cue is not None and cue.samples >= min_pairs
            flatness.append((r.kind, cue.score if cue is not None and enough else None, threshold))
        figures["groups"][group] = {
            "presentations": len(mine),
            "verdict": {
                m: verdict_figures([(r, j) for r, j in judged[m] if member(r)]) for m in modes
            },
            "passive_alone": score_figures(passive),
            "parallax_alone": score_figures(flatness),
        }
    # The default policy's figures at the top level (the shape earlier runs printed), and each
    # parallax mode's worst APCER and BPCER against "off", measured on the same evidence.
    overall = figures["groups"]["all"]
    default = next(
        (
            label
            for label, mode, head in variants
            if mode == settings.liveness_parallax and head == settings.liveness_head_motion
        ),
        modes[-1],
    )
    figures |= overall["verdict"][default]
    figures["passive_apcer_per_type"] = {
        k[len("apcer_") :]: v for k, v in overall["passive_alone"].items() if k.startswith("apcer_")
    }
    figures["passive_bpcer"] = overall["passive_alone"]["bpcer"]
    # Against the verdict before either addition: no parallax cue, only a blink makes live.
    reference = next((m for m in ("off/blink-only", "off") if m in modes), None)
    if reference is not None:
        figures["against"] = reference
        figures["against_off"] = {
            group: {
                shown: {
                    "worst_apcer": [v["worst_apcer"], block["verdict"][reference]["worst_apcer"]],
                    "bpcer": [v["bpcer"], block["verdict"][reference]["bpcer"]],
                    "bona_fide_not_live": [
                        v["bona_fide_not_live"],
                        block["verdict"][reference]["bona_fide_not_live"],
                    ],
                }
                for shown, v in block["verdict"].items()
            }
            for group, block in figures["groups"].items()
        }
    misjudged = []
    for named, judged_rows in judged.items():
        for who, verdict in judged_rows:
            if (verdict.state == "live") if who.kind != "real" else (verdict.state == "spoof"):
                misjudged.append(
                    f"[{named}] {who.kind} {who.name}: {verdict.state} ({verdict.reason})"
                )
    figures["misjudged"] = misjudged
    for group, block in figures["groups"].items():
        print(f"== {group}: {block['presentations']} presentations")
        print(f"{'parallax':>24} {'kind':>8} {'n':>4} {'live':>6} {'spoof':>6}")
        for mode, v in block["verdict"].items():
            for kind, row in v["kinds"].items():
                print(
                    f"{mode:>24} {kind:>8} {row['presentations']:>4} {row['live']:>6.3f} "
                    f"{row['spoof']:>6.3f}"
                )
            print(
                f"{mode:>24} worst APCER {v['worst_apcer']} ({v['worst_attack_type']}), "
                f"BPCER {v['bpcer']}, bona fide not live {v['bona_fide_not_live']}"
            )
        print(f"  passive alone: {block['passive_alone']}")
        print(f"  parallax alone: {block['parallax_alone']}")
    for index, (who, verdict) in enumerate(judged[modes[-1]]):
        states = " ".join(f"{m}={judged[m][index][1].state}" for m in modes)
        cues = ", ".join(f"{c.name} {c.score:.2f}/{c.samples}" for c in verdict.cues)
        print(f"  {who.kind:>8} {who.name:<28} {states:<48} blinks {verdict.blinks}  {cues}")
    for line in misjudged:
        print("  misjudged:", line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
