"""1:N identification on the shared face photos: rank-1 accuracy of enrolled people, and how
often people who are not enrolled are taken for someone (false accepts).

    .venv/bin/python -m benchmarks.identification [--data DIR] [--threshold T] [--k K]

The threshold and k default to the shipped 1:N settings (`recognition_threshold`,
`recognition_score_k`); identities are scored as recognition scores them (mean distance of the
k nearest samples). Figures at the shipped threshold, then a sweep of thresholds, and the closest
impostor / furthest genuine score (the room between them is the safe range).

Gallery: every photo in faces/train/<name>/ and the first crop of four faces/bbt/ people.
Probes: the single-person photos in faces/test/ and extra/ (each shows one enrolled person), the
other crops of the four enrolled bbt people (genuine), and every crop of the four bbt people
left out (impostors). Reference in the same run: the same probes against the same gallery with
a brute-force per-identity search, which must agree exactly. A photo with no face found (HOG,
then the MMOD CNN) is counted as missed, never replaced. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.faces import embed_largest, embed_photo
from services.recognition.gallery import Gallery, identity_distance
from watchpost.progress import track
from watchpost.settings import RecognitionSettings, default_data_dir

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


def build_gallery(
    faces: Path, k: int, jitter: int
) -> tuple[Gallery, np.ndarray, list[int], dict[str, int]]:
    entries = gallery_entries(faces)
    ident = {name: number for number, name in enumerate(dict.fromkeys(n for n, _ in entries), 1)}
    rows = np.stack([embed_largest(photo, jitter=jitter) for _, photo in track(entries, "gallery")])
    ids = [ident[name] for name, _ in entries]
    return Gallery(rows, ids, [name for name, _ in entries], k=k), rows, ids, ident


def brute_force(
    rows: np.ndarray, ids: list[int], probe: np.ndarray, threshold: float, k: int
) -> int | None:
    owners = np.asarray(ids)
    scores = {i: identity_distance(rows[owners == i], probe, k=k) for i in set(ids)}
    best = min(scores, key=scores.__getitem__)
    return best if scores[best] <= threshold else None


def main() -> None:
    shipped = RecognitionSettings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--threshold", type=float, default=shipped["recognition_threshold"].default)
    parser.add_argument("--k", type=int, default=shipped["recognition_score_k"].default)
    parser.add_argument(
        "--enrol-jitter", type=int, default=shipped["recognition_enrol_jitter"].default
    )
    args = parser.parse_args()
    faces = args.data / "faces"
    gallery, rows, ids, ident = build_gallery(faces, args.k, args.enrol_jitter)
    genuine = [(faces / path, name) for path, name in SINGLE_PERSON_PROBES.items()]
    genuine += [(p, n) for n in BBT_ENROLLED for p in sorted((faces / "bbt" / n).glob("*.png"))[1:]]
    impostors = [p for n in BBT_STRANGERS for p in sorted((faces / "bbt" / n).glob("*.png"))]
    missed, agree = [], 0
    genuine_scores = []  # (named identity right?, score of the best identity)
    for path, name in track(genuine, "genuine probes"):
        probe = embed_photo(path).embedding
        if probe is None:
            missed.append(str(path))
            continue
        match = gallery.identify(probe, threshold=np.inf)
        assert match.distance is not None  # an infinite threshold always names someone
        genuine_scores.append((match.identity_id == ident[name], match.distance))
        agree += match.identity_id == brute_force(rows, ids, probe, np.inf, args.k)
    impostor_scores = []
    for path in track(impostors, "impostor probes"):
        probe = embed_photo(path).embedding
        if probe is None:
            missed.append(str(path))
            continue
        match = gallery.identify(probe, threshold=np.inf)
        assert match.distance is not None
        impostor_scores.append(match.distance)
        agree += match.identity_id == brute_force(rows, ids, probe, np.inf, args.k)

    def at(threshold: float) -> tuple[int, int]:
        """(genuine probes named right, impostors accepted); a missed face is not named."""
        right = sum(bool(ok and d <= threshold) for ok, d in genuine_scores)
        return right, sum(bool(d <= threshold) for d in impostor_scores)

    correct, false_accepts = at(args.threshold)
    sweep = {
        f"{t:.2f}": dict(zip(("rank1", "strangers_accepted"), at(t), strict=True))
        for t in np.arange(0.40, 0.621, 0.02)
    }
    figures = {
        "threshold": args.threshold,
        "k": args.k,
        "enrol_jitter": args.enrol_jitter,
        "gallery_people": gallery.identity_count,
        "gallery_embeddings": len(gallery),
        "genuine_probes": len(genuine),
        "rank1_accuracy": correct / len(genuine),
        "impostor_probes": len(impostors),
        "strangers_accepted": false_accepts,
        "false_accept_rate": false_accepts / len(impostors),
        "faces_missed": len(missed),
        "agreement_checked": len(genuine_scores) + len(impostor_scores),
        "closest_impostor": min(impostor_scores),
        "furthest_right_genuine": max(d for ok, d in genuine_scores if ok),
        "agreement_with_brute_force": agree / (len(genuine_scores) + len(impostor_scores)),
        "sweep": sweep,
    }
    for path in missed:
        print(f"no face found: {path}")
    for t, row in sweep.items():
        print(
            f"  threshold {t}: rank-1 {row['rank1']}/{len(genuine)}, "
            f"strangers accepted {row['strangers_accepted']}/{len(impostors)}"
        )
    print(
        f"rank-1 {correct}/{len(genuine)}, strangers accepted {false_accepts}/{len(impostors)} "
        f"at threshold {args.threshold} (k={args.k}); closest impostor "
        f"{figures['closest_impostor']:.3f}, "
        f"furthest genuine {figures['furthest_right_genuine']:.3f}"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
