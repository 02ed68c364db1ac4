"""Turn an uploaded photo into a face sample: validate, embed (via recognition), crop, store."""

from __future__ import annotations

import httpx
import numpy as np
import psycopg
import redis

from watchpost.db import identities
from watchpost.images import ImageError, crop, decode_upload, encode_jpeg
from watchpost.keys import Keys


class EnrolmentError(ValueError):
    """The photo cannot be enrolled; the message says why (shown to the user)."""


class RecognitionUnavailable(RuntimeError):
    pass


def embed_single_face(
    data: bytes, filename: str, *, recognition_url: str, max_bytes: int
) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """(rgb, face box, embedding) of the one face in the photo."""
    try:
        rgb = decode_upload(data, max_bytes=max_bytes)  # reject bad files before recognition
    except ImageError as exc:
        raise EnrolmentError(str(exc)) from None
    try:
        response = httpx.post(
            f"{recognition_url.rstrip('/')}/v1/faces",
            files={"file": (filename, data, "application/octet-stream")},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise RecognitionUnavailable(f"recognition service unreachable: {exc}") from None
    if response.status_code == 422:
        raise EnrolmentError(response.json().get("detail", "image rejected"))
    if response.status_code != 200:
        raise RecognitionUnavailable(f"recognition service answered {response.status_code}")
    faces = response.json()["faces"]
    if not faces:
        raise EnrolmentError("no face found in the photo")
    if len(faces) > 1:
        raise EnrolmentError(f"{len(faces)} faces found; send a photo of one person")
    box = faces[0]["box"]
    return (
        rgb,
        (box["left"], box["top"], box["right"], box["bottom"]),
        np.asarray(faces[0]["embedding"], np.float32),
    )


def enrol_face(
    conn: psycopg.Connection,
    redis_client: redis.Redis,
    keys: Keys,
    *,
    identity_id: int,
    rgb: np.ndarray,
    box: tuple[int, int, int, int],
    embedding: np.ndarray,
) -> dict:
    row = identities.add_face_sample(
        conn,
        identity_id=identity_id,
        embedding=embedding,
        box=box,
        image_jpeg=encode_jpeg(crop(rgb, box), quality=92),
    )
    conn.commit()  # durable before recognition replicas are told to reload
    redis_client.incr(keys.gallery_version)
    return row
