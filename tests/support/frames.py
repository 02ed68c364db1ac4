"""Build frames from still photos, as capture would publish them."""

from __future__ import annotations

import time

import numpy as np

from watchpost.geometry import Box
from watchpost.images import encode_jpeg
from watchpost.images import load_rgb as load_rgb  # re-exported for the callers
from watchpost.keys import ShardedStream, Stream
from watchpost.messages import FaceCrop, Frame, TrackedFace
from watchpost.streams import publish
from watchpost.vision.faces import detect_faces

TEST_FRAMES_MAXLEN = 100_000


def frame_of(
    rgb: np.ndarray,
    *,
    camera_id: str = "cam",
    track_prefix: str = "t",
    seq: int = 0,
    source_time: float = 0.0,
    boxes=None,
) -> tuple[Frame, bytes]:
    boxes = boxes if boxes is not None else detect_faces(rgb, upsample=1)
    faces = [
        TrackedFace(
            track_id=f"{track_prefix}-{i}",
            box=Box.of(b),
            detected=True,
        )
        for i, b in enumerate(boxes)
    ]
    h, w = rgb.shape[:2]
    frame = Frame(
        camera_id=camera_id,
        seq=seq,
        captured_at=time.time(),
        source_time=source_time,
        width=w,
        height=h,
        faces=faces,
    )
    return frame, encode_jpeg(rgb)


def publish_frame(
    client,
    stream: Stream[Frame] | ShardedStream[Frame],
    rgb: np.ndarray,
    *,
    crop_every: int = 3,
    **kw,
) -> Frame:
    """`frame_of` published as capture would: with a camera-resolution crop of each face every
    `crop_every`-th frame (by `seq`). Tests publish whole videos before a worker reads them, so
    the stream keeps every frame (capture's own bound is a setting too)."""
    frame, jpeg = frame_of(rgb, **kw)
    pictures: dict[str, bytes] = {}
    crops = []
    if crop_every and frame.seq % crop_every == 0:
        h, w = rgb.shape[:2]
        for face in frame.faces:
            crop = FaceCrop.around(face.track_id, face.box.as_tuple(), w, h)
            left, top, right, bottom = crop.square.as_tuple()
            crops.append(crop)
            pictures[crop.attachment] = encode_jpeg(rgb[top:bottom, left:right], quality=95)
    frame = frame.model_copy(update={"crops": crops})
    if isinstance(stream, ShardedStream):  # the camera's shard, as capture publishes
        stream = stream.of(frame.camera_id)
    publish(client, stream, frame, image=jpeg, attachments=pictures, maxlen=TEST_FRAMES_MAXLEN)
    return frame
