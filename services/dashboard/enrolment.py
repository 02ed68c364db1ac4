"""Turn uploaded photos into face samples: validate, embed (via recognition), check, store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
import redis
from pydantic import ValidationError

from watchpost.contracts import FacesOut, NearestIn, NearestOut
from watchpost.db import identities
from watchpost.db.pool import Conn, Row
from watchpost.images import ImageError, crop, decode_upload, encode_jpeg, sharpness
from watchpost.keys import Keys
from watchpost.messages import GalleryChange
from watchpost.streams import publish


class EnrolmentError(ValueError):
    """The photo cannot be enrolled; the message says why (shown to the user)."""


class RecognitionUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class FaceRules:
    max_bytes: int
    min_face_px: int
    min_sharpness: float
    largest: bool = False  # several faces: take the largest instead of refusing
    outlier_distance: float = 0.6  # farther from all of the person's photos: refused
    duplicate_distance: float = 0.45  # nearer to another person's photo: a possible duplicate
    force: bool = False  # enrol a possible duplicate or an outlier anyway


@dataclass(frozen=True)
class CheckedFace:
    rgb: np.ndarray
    box: tuple[int, int, int, int]
    embedding: np.ndarray


def check_face(
    data: bytes, filename: str, *, recognition_url: str, rules: FaceRules, headers: dict[str, str]
) -> CheckedFace:
    """The one usable face in the photo, or EnrolmentError saying what is wrong with it."""
    try:
        rgb = decode_upload(data, max_bytes=rules.max_bytes)  # refuse bad files before recognition
    except ImageError as exc:
        raise EnrolmentError(str(exc)) from None
    try:
        response = httpx.post(
            f"{recognition_url.rstrip('/')}/v1/faces",
            files={"file": (filename, data, "application/octet-stream")},
            headers=headers,
            timeout=60.0,
        )
    except httpx.HTTPError as exc:
        raise RecognitionUnavailable(f"recognition service unreachable: {exc}") from None
    if response.status_code == 422:
        raise EnrolmentError(str(response.json().get("detail", "image rejected")))
    if response.status_code != 200:
        raise RecognitionUnavailable(f"recognition service answered {response.status_code}")
    try:
        faces = FacesOut.model_validate_json(response.content).faces  # largest first
    except ValidationError as exc:
        raise RecognitionUnavailable(f"recognition sent an unreadable answer: {exc}") from None
    if not faces:
        raise EnrolmentError("no face found in the photo")
    if len(faces) > 1 and not rules.largest:
        raise EnrolmentError(
            f"{len(faces)} faces found; send a photo of one person (or ask for the largest face)"
        )
    box = faces[0].box.as_tuple()
    width = box[2] - box[0]
    if width < rules.min_face_px:
        raise EnrolmentError(f"the face is {width} px wide; at least {rules.min_face_px} px needed")
    score = sharpness(rgb, box)
    if score < rules.min_sharpness:
        raise EnrolmentError(
            f"the face is too blurry (sharpness {score:.0f}, at least {rules.min_sharpness:.0f})"
        )
    return CheckedFace(rgb, box, np.asarray(faces[0].embedding, np.float32))


def check_against_gallery(
    face: CheckedFace,
    *,
    name: str,
    place: NearestOut,
    earlier: list[np.ndarray],
    rules: FaceRules,
) -> None:
    """EnrolmentError when the new face is unlike the person's other photos (their stored
    samples, as `place` says, and `earlier` faces of the same upload), or so like another
    person's photo that it may be the same person enrolled twice; `rules.force` allows both
    (the error says how)."""
    if rules.force:
        return
    own = place.own_samples + len(earlier)
    distances = [float(np.linalg.norm(e - face.embedding)) for e in earlier]
    if place.own_nearest is not None:
        distances.append(place.own_nearest)
    if distances:
        nearest = min(distances)
        if nearest > rules.outlier_distance:
            raise EnrolmentError(
                f"this face is unlike {name}'s other {own} photo(s) (distance {nearest:.2f} "
                f"to the nearest, at most {rules.outlier_distance:.2f} expected): another person, "
                "or a poor photo? Send force=true to enrol it anyway"
            )
    other = place.other
    if other is not None and other.distance < rules.duplicate_distance:
        raise EnrolmentError(
            f"this face is very like {other.display_name!r} (identity "
            f"{other.identity_id}, distance {other.distance:.2f}, below "
            f"{rules.duplicate_distance:.2f}): possibly the same person enrolled twice. "
            "Send force=true to enrol it anyway"
        )


def nearest_in_gallery(
    embedding: np.ndarray,
    identity_id: int | None,
    *,
    recognition_url: str,
    headers: dict[str, str],
) -> NearestOut:
    """Where the face falls in recognition's gallery (in memory there: no sample is read
    here); RecognitionUnavailable, with the reason, when recognition is away or not ready."""
    body = NearestIn(embedding=[float(x) for x in embedding], identity_id=identity_id)
    try:
        response = httpx.post(
            f"{recognition_url.rstrip('/')}/v1/gallery/nearest",
            content=body.model_dump_json(),
            headers={**headers, "Content-Type": "application/json"},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise RecognitionUnavailable(f"recognition service unreachable: {exc}") from None
    if response.status_code == 503:
        try:
            reason = str(response.json().get("detail", "not ready"))
        except ValueError:
            reason = "not ready"
        raise RecognitionUnavailable(f"recognition is not ready: {reason}")
    if response.status_code != 200:
        raise RecognitionUnavailable(
            f"recognition's gallery answered {response.status_code}: the enrolment checks "
            "cannot run"
        )
    try:
        return NearestOut.model_validate_json(response.content)
    except ValidationError as exc:
        raise RecognitionUnavailable(f"recognition sent an unreadable answer: {exc}") from None


def gallery_check(
    identity_id: int | None,
    name: str,
    rules: FaceRules,
    *,
    recognition_url: str,
    headers: dict[str, str],
) -> Callable[[CheckedFace], None]:
    """A checker for one identity's new faces (None: a new person) against the gallery, which
    recognition holds in memory (one call per face); faces accepted earlier in the same upload
    count as the person's own photos."""
    earlier: list[np.ndarray] = []

    def check(face: CheckedFace) -> None:
        if not rules.force:
            place = nearest_in_gallery(
                face.embedding, identity_id, recognition_url=recognition_url, headers=headers
            )
            check_against_gallery(face, name=name, place=place, earlier=earlier, rules=rules)
        earlier.append(face.embedding)

    return check


def store_faces(
    conn: Conn,
    redis_client: redis.Redis,
    keys: Keys,
    *,
    identity_id: int,
    faces: list[CheckedFace],
) -> list[Row]:
    """Insert the faces in one transaction, then tell recognition replicas to add them."""
    rows = [
        identities.add_face_sample(
            conn,
            identity_id=identity_id,
            embedding=face.embedding,
            box=face.box,
            image_jpeg=encode_jpeg(crop(face.rgb, face.box), quality=92),
        )
        for face in faces
    ]
    conn.commit()  # durable before recognition replicas are told
    if rows:
        announce_change(redis_client, keys, identity_id)
    return rows


def gallery_changed(conn: Conn, redis_client: redis.Redis, keys: Keys, identity_id: int) -> None:
    """Commit a change of one identity's faces or name, then tell recognition replicas."""
    conn.commit()
    announce_change(redis_client, keys, identity_id)


def announce_change(redis_client: redis.Redis, keys: Keys, identity_id: int) -> None:
    """One change-log entry naming the identity, and the version's increment, together: each
    recognition replica re-reads that identity alone (docs/recognition.md, "The gallery")."""
    pipe = redis_client.pipeline(transaction=True)
    publish(pipe, keys.gallery_changes, GalleryChange(identity_id=identity_id))
    pipe.incr(keys.gallery_version)
    pipe.execute()
