"""The presentation-attack (PAD) data of the passive check: folds, presentations and face crops.

Two parts of the shared data (../shared/data/README.md):

* `liveness/nuaa_train`: NUAA's official train split, 9 subjects, 640x480 webcam frames. File
  names are `ID_glasses_pos_session_picNo.jpg`; one presentation is one session of one subject
  (real, or one printed-photo attack) and its frames are a time sequence. Every 4th frame of a
  session in picture-number order is used (`NUAA_STEP`), which keeps crop extraction short.
* `liveness/extra`: 12 public sources, one row per file in `manifest.csv` (read its README: crop
  sizes, colour casts and web photos as "real" are shortcuts). Files with a `quality_flag` (not
  faces) and the two videos are left out.

Folds of the leave-one-source-out protocol (`FOLDS`): nuaa, celeba (the `celeba_*` part of
JonathanSuryaS with all of ReynaraEzra: the same upstream dataset), vendor (the `kaggle_*` and
`axon_*` parts of JonathanSuryaS), aksultan, neonipun, and small (seven small single-person
screen-replay sources pooled). minivision-ai (3 images) is the spare `spare` fold, never in LOSO.

Presentations (ISO/IEC 30107-3 counts errors per presentation): a NUAA session; in JonathanSuryaS
the `group_hint` (a CelebA subject, a vendor person id, a vendor video) of one label; ReynaraEzra
and minivision one image each (different photos of different people); in the other sources, which
are thinned video frames of one or a few people with no finer grouping, runs of `RUN` consecutive
files (by file number) of one label.

Crops: the largest HOG face (`detect_faces`, upsample 0, then 1 if none) cut with
`watchpost.images.cut_square` (CROP_CONTEXT on each side, square). When no face is found the image
is taken whole as the crop (most extra sources already are face crops, many too small for HOG);
`Sample.found` says which. Crops larger than `CACHE_SIDE` are stored shrunk to it (the model
resizes to 128 px anyway). The crops are cached under .watchpost/cache/pad_crops_v1.pkl.
"""

from __future__ import annotations

import csv
import pickle
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from watchpost.settings import PROJECT_ROOT

NUAA = "liveness/nuaa_train"
EXTRA = "liveness/extra"
NUAA_STEP = 4
RUN = 5
CACHE_SIDE = 256
CACHE = PROJECT_ROOT / ".watchpost" / "cache" / "pad_crops_v1.pkl"

FOLDS = ("nuaa", "celeba", "vendor", "aksultan", "neonipun", "small")
SMALL_SOURCES = (
    "BalveerSinghYT",
    "Krzysiek354",
    "TrickyF0x",
    "VishalkrishnaBlaze",
    "alexcamargoweb",
    "jtboing",
    "lestari15",
)


@dataclass(frozen=True)
class Item:
    """One image of the PAD data, before cropping."""

    path: str  # relative to the data folder
    label: int  # 1 = attack, 0 = bona fide
    source: str  # source repository owner (or "NUAA"), or "JonathanSuryaS/celeba" etc.
    fold: str  # one of FOLDS, or "spare"
    presentation: str  # frames of one presentation share it
    subject: str = ""  # NUAA subject id


@dataclass
class Sample:
    item: Item
    crop: np.ndarray  # RGB uint8, square-ish, at most CACHE_SIDE
    found: bool  # a face was found (else the whole image is the crop)


def _number(name: str) -> int:
    digits = re.findall(r"\d+", name)
    return int(digits[-1]) if digits else 0


def nuaa_items(data: Path) -> list[Item]:
    root = data / NUAA
    sessions: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for listing, label in (("client_train_raw.txt", 0), ("imposter_train_raw.txt", 1)):
        for line in (root / listing).read_text().split():
            rel = line.replace("\\", "/")
            subject, glasses, pos, session, pic = Path(rel).stem.split("_")
            key = (label, f"{subject}_{glasses}_{pos}_{session}")
            sessions[key].append((int(pic), rel))
    items = []
    for (label, session), frames in sorted(sessions.items()):
        frames.sort()
        for _, rel in frames[::NUAA_STEP]:
            items.append(
                Item(
                    path=f"{NUAA}/{rel}",
                    label=label,
                    source="NUAA",
                    fold="nuaa",
                    presentation=f"nuaa:{label}:{session}",
                    subject=session.split("_")[0],
                )
            )
    return items


def _extra_fold(owner: str, name: str) -> tuple[str, str]:
    """(source, fold) of one extra file."""
    if owner == "JonathanSuryaS":
        part = name.split("_")[0]
        return f"JonathanSuryaS/{part}", "celeba" if part == "celeba" else "vendor"
    if owner == "ReynaraEzra":
        return owner, "celeba"
    if owner == "AksultanMukhanbet":
        return owner, "aksultan"
    if owner == "neonipun":
        return owner, "neonipun"
    if owner in SMALL_SOURCES:
        return owner, "small"
    if owner == "minivision-ai":
        return owner, "spare"
    raise ValueError(f"unknown extra source {owner}")


def extra_items(data: Path) -> tuple[list[Item], list[str]]:
    """The extra images as Items, and the paths left out (flagged crops, videos)."""
    rows = list(csv.DictReader((data / EXTRA / "manifest.csv").open()))
    left_out = []
    runs: dict[tuple[str, int], list[tuple[int, dict]]] = defaultdict(list)
    items = []
    for row in rows:
        path = row["path"]
        if row["quality_flag"] or "/videos/" in path:
            left_out.append(path)
            continue
        owner = path.split("__")[0]
        name = Path(path).name
        label = 0 if row["label"] == "real" else 1
        source, fold = _extra_fold(owner, name)
        if owner == "JonathanSuryaS":
            presentation = f"{source}:{label}:{row['group_hint']}"
        elif owner in ("ReynaraEzra", "minivision-ai"):
            presentation = f"{source}:{path}"
        else:
            runs[(source, label)].append((_number(name), row))
            continue
        items.append(Item(f"{EXTRA}/{path}", label, source, fold, presentation))
    for (source, label), files in sorted(runs.items()):
        files.sort(key=lambda pair: pair[0])
        for index, (_, row) in enumerate(files):
            fold = _extra_fold(source, "")[1]
            presentation = f"{source}:{label}:run{index // RUN}"
            items.append(Item(f"{EXTRA}/{row['path']}", label, source, fold, presentation))
    return items, left_out


def all_items(data: Path) -> tuple[list[Item], list[str]]:
    extra, left_out = extra_items(data)
    return nuaa_items(data) + extra, left_out


def _shrink(crop: np.ndarray, side: int = CACHE_SIDE) -> np.ndarray:
    h, w = crop.shape[:2]
    if max(h, w) <= side:
        return np.ascontiguousarray(crop)
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BOX))


def face_crop(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """The run-time crop of the largest face, or the whole image (centre square) if none."""
    from watchpost.images import cut_square
    from watchpost.vision.faces import detect_faces

    boxes = detect_faces(rgb, upsample=0) or detect_faces(rgb, upsample=1)
    if boxes:
        return cut_square(rgb, boxes[0]), True
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top : top + side, left : left + side], False


def _extract(args: tuple[str, str]) -> tuple[np.ndarray, bool]:
    data, rel = args
    with Image.open(Path(data) / rel) as image:
        rgb = np.asarray(image.convert("RGB"))
    crop, found = face_crop(rgb)
    return _shrink(crop), found


def load_samples(
    data: Path,
    *,
    workers: int = 2,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[list[Sample], list[str]]:
    """Every Item with its crop (cached), and the extra files left out."""
    items, left_out = all_items(data)
    cached: dict[str, tuple[np.ndarray, bool]] = {}
    if CACHE.exists():
        with CACHE.open("rb") as handle:
            cached = pickle.load(handle)
    missing = [item.path for item in items if item.path not in cached]
    if missing:
        with ProcessPoolExecutor(workers) as pool:
            results: Iterable[tuple[np.ndarray, bool]] = pool.map(
                _extract, [(str(data), rel) for rel in missing], chunksize=8
            )
            if progress is not None:
                results = progress(results)
            for rel, result in zip(missing, results, strict=True):
                cached[rel] = result
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with CACHE.open("wb") as handle:
            pickle.dump(cached, handle, protocol=pickle.HIGHEST_PROTOCOL)
    samples = [Sample(item, *cached[item.path]) for item in items]
    return samples, left_out


def fold_samples(
    data: Path, *, progress: Callable[[Iterable], Iterable] | None = None
) -> tuple[list[Sample], np.ndarray, np.ndarray, np.ndarray]:
    """The samples of the LOSO folds (`FOLDS`), with their labels, folds and presentations as
    arrays: what every leave-one-source-out experiment starts from."""
    samples, _ = load_samples(data, progress=progress)
    samples = [s for s in samples if s.item.fold in FOLDS]
    labels = np.array([s.item.label for s in samples])
    folds = np.array([s.item.fold for s in samples])
    presentations = np.array([s.item.presentation for s in samples])
    return samples, labels, folds, presentations
