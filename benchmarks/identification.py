"""1:N identification on the shared face photos: rank-1 accuracy of enrolled people, and how
often people who are not enrolled are taken for someone (false accepts).

    .venv/bin/python -m benchmarks.identification [--data DIR] [--threshold 0.6]

Gallery: every photo in faces/train/<name>/ and the first crop of four faces/bbt/ people.
Probes: the single-person photos in faces/test/ and extra/ (each shows one enrolled person), the
other crops of the four enrolled bbt people (genuine), and every crop of the four bbt people
left out (impostors). Reference in the same run: the same probes against the same gallery with
a brute-force `np.linalg.norm` search, which must agree exactly. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.faces import embed_largest
from services.recognition.gallery import Gallery
from watchpost.settings import default_data_dir

BBT_ENROLLED = ["howard", "leonard", "penny", "sheldon"]
BBT_STRANGERS = ["amy", "bernadette", "raj", "stuart"]
SINGLE_PERSON_PROBES = {
    "test/obama1.jpg": "obama",
    "test/alex_lacamoire1.jpg": "alex_lacamoire",
    "test/johnsnow_test1.jpg": "kit_harington",
    "extra/obama3.jpg": "obama",
    "extra/obama_small.jpg": "obama",
    "extra/obama_partial_face.jpg": "obama",
    "extra/obama_partial_face2.jpg": "obama",
}


def gallery_entries(faces: Path) -> list[tuple[str, Path]]:
    enrolment = {
        p.name: sorted(f for f in p.iterdir() if f.is_file()) for p in (faces / "train").iterdir()
    }
    enrolment.update({n: [sorted((faces / "bbt" / n).glob("*.png"))[0]] for n in BBT_ENROLLED})
    return [(name, photo) for name, photos in sorted(enrolment.items()) for photo in photos]


def build_gallery(faces: Path) -> tuple[Gallery, np.ndarray, list[int], dict[str, int]]:
    entries = gallery_entries(faces)
    ident = {name: number for number, name in enumerate(dict.fromkeys(n for n, _ in entries), 1)}
    rows = np.stack([embed_largest(photo) for _, photo in entries])
    ids = [ident[name] for name, _ in entries]
    return Gallery(rows, ids, [name for name, _ in entries]), rows, ids, ident


def brute_force(
    gallery_rows: np.ndarray, ids: list[int], probe: np.ndarray, threshold: float
) -> int | None:
    distances = np.linalg.norm(gallery_rows - probe, axis=1)
    best = int(np.argmin(distances))
    return ids[best] if distances[best] <= threshold else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--threshold", type=float, default=0.6)
    args = parser.parse_args()
    faces = args.data / "faces"
    gallery, rows, ids, ident = build_gallery(faces)
    genuine = [(faces / path, name) for path, name in SINGLE_PERSON_PROBES.items()]
    genuine += [(p, n) for n in BBT_ENROLLED for p in sorted((faces / "bbt" / n).glob("*.png"))[1:]]
    impostors = [p for n in BBT_STRANGERS for p in sorted((faces / "bbt" / n).glob("*.png"))]
    correct = agree = 0
    for path, name in genuine:
        probe = embed_largest(path)
        match = gallery.identify(probe, threshold=args.threshold)
        correct += match.identity_id == ident[name]
        agree += match.identity_id == brute_force(rows, ids, probe, args.threshold)
    false_accepts = 0
    for path in impostors:
        probe = embed_largest(path)
        match = gallery.identify(probe, threshold=args.threshold)
        false_accepts += match.identity_id is not None
        agree += match.identity_id == brute_force(rows, ids, probe, args.threshold)
    figures = {
        "threshold": args.threshold,
        "gallery_people": gallery.identity_count,
        "gallery_embeddings": len(gallery),
        "genuine_probes": len(genuine),
        "rank1_accuracy": correct / len(genuine),
        "impostor_probes": len(impostors),
        "false_accept_rate": false_accepts / len(impostors),
        "agreement_with_brute_force": agree / (len(genuine) + len(impostors)),
    }
    print(
        f"rank-1 {correct}/{len(genuine)}, false accepts {false_accepts}/{len(impostors)} "
        f"at threshold {args.threshold}"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
