"""Build an LFW-style verification set from the shared face photos, to develop with.

    .venv/bin/python -m benchmarks.make_pairs OUT_DIR [--data DIR]

Writes OUT_DIR/images/<name>/<name>_NNNN.<ext> (symlinks to the originals) and OUT_DIR/pairs.txt in
LFW's format: a header "<folds> <n>", then per fold n matched lines "name i j" followed by n
mismatched lines "name1 i name2 j". Pairs are drawn with a fixed seed, so the set is repeatable.
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

from watchpost.settings import default_data_dir

FOLDS = 10


def people(data: Path) -> dict[str, list[Path]]:
    faces = data / "faces"
    found: dict[str, list[Path]] = {}
    for folder in sorted((faces / "bbt").iterdir()):
        if folder.is_dir() and folder.name != "group":
            found[folder.name] = sorted(folder.glob("*.png"))
    for folder in sorted((faces / "train").iterdir()):
        found[folder.name] = sorted(p for p in folder.iterdir() if p.is_file())
    extra = {  # test photos of one enrolled person each
        "obama": ["test/obama1.jpg", "extra/obama3.jpg"],
        "alex_lacamoire": ["test/alex_lacamoire1.jpg"],
        "kit_harington": ["test/johnsnow_test1.jpg"],
    }
    for name, paths in extra.items():
        found[name] += [faces / p for p in paths]
    return found


def build(data: Path, out: Path, seed: int = 7) -> Path:
    rng = random.Random(seed)
    everyone = people(data)
    images = out / "images"
    for name, photos in everyone.items():
        (images / name).mkdir(parents=True, exist_ok=True)
        for index, photo in enumerate(photos, start=1):
            link = images / name / f"{name}_{index:04d}{photo.suffix.lower()}"
            link.unlink(missing_ok=True)
            link.symlink_to(photo.resolve())
    matched = [
        (name, i, j)
        for name, photos in everyone.items()
        for i, j in itertools.combinations(range(1, len(photos) + 1), 2)
    ]
    rng.shuffle(matched)
    per_fold = len(matched) // FOLDS
    names = list(everyone)
    lines = [f"{FOLDS}\t{per_fold}"]
    for fold in range(FOLDS):
        lines += [f"{n}\t{i}\t{j}" for n, i, j in matched[fold * per_fold : (fold + 1) * per_fold]]
        for _ in range(per_fold):
            a, b = rng.sample(names, 2)
            lines.append(
                f"{a}\t{rng.randint(1, len(everyone[a]))}\t{b}\t{rng.randint(1, len(everyone[b]))}"
            )
    (out / "pairs.txt").write_text("\n".join(lines) + "\n")
    return out / "pairs.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args()
    print(build(args.data, args.out))


if __name__ == "__main__":
    main()
