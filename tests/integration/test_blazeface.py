"""BlazeFace, the real model on the shared photos and video: it finds the large faces HOG finds,
its boxes embed like HOG's, broken frames give nothing, and capture runs on it end to end."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from services.capture.loop import CaptureLoop
from tests.conftest import require_data
from tests.support import shards
from watchpost.images import load_rgb
from watchpost.keys import Keys
from watchpost.messages import Frame, decode
from watchpost.settings import CaptureSettings
from watchpost.vision import blazeface
from watchpost.vision.faces import detect_faces, embed_face
from watchpost.vision.tracking import iou

pytestmark = pytest.mark.data

LARGE = 80  # px: a door camera's faces (HOG without upsampling finds them too)


def capped(rgb: np.ndarray, width: int = 640) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


def frames_of(relative: str, indices: list[int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(require_data(relative)))
    frames, index = [], 0
    while index <= max(indices):
        ok, bgr = capture.read()
        if not ok:
            break
        if index in indices:
            frames.append(capped(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        index += 1
    capture.release()
    return frames


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Photos and frames none of them used to fit the box mapping (faces/test, the two-people
    clip) and one the mapping was fitted on (faces/train), at capture's width."""
    folder = require_data("faces/test")
    photos = [capped(load_rgb(p)) for p in sorted(folder.glob("*.jpg"))]
    photos += [capped(load_rgb(p)) for p in sorted(require_data("faces/train").rglob("*.jpg"))]
    return photos + frames_of("video/two_people_1080p.mp4", [0, 60, 120])


@pytest.mark.parametrize("network", ["short", "full"])
def test_blazeface_finds_every_large_face_hog_finds(images, network):
    large = 0
    for rgb in images:
        found = blazeface.detect_faces(rgb, network=network)
        for box in detect_faces(rgb, upsample=1):
            if box[2] - box[0] < LARGE:
                continue
            large += 1
            assert max((iou(box, b) for b in found), default=0) >= 0.5, (network, box, found)
    assert large >= 10


@pytest.mark.parametrize("network", ["short", "full"])
def test_a_blazeface_box_embeds_like_hogs_box_of_the_same_face(images, network):
    """The 5-point alignment gets about the same landmarks from the mapped box: the embedding
    moves far less than the match threshold (0.55; two photos of one person are about 0.44
    apart). benchmarks/detectors.py measures the same on more faces, with HOG's own box without
    upsampling as the reference."""
    distances = []
    for rgb in images[::3]:
        found = blazeface.detect_faces(rgb, network=network)
        for box in detect_faces(rgb, upsample=1):
            if box[2] - box[0] < LARGE:
                continue
            _, match = max((iou(box, b), b) for b in found)
            distances.append(float(np.linalg.norm(embed_face(rgb, box) - embed_face(rgb, match))))
    assert len(distances) >= 4
    assert float(np.median(distances)) < 0.08 and max(distances) < 0.2, distances


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((360, 640, 3), np.uint8),  # a black frame
        np.full((360, 640, 3), 255, np.uint8),
        np.random.default_rng(7).integers(0, 256, (360, 640, 3), dtype=np.uint8),  # noise
        np.zeros((0, 0, 3), np.uint8),  # empty
        np.zeros((4, 640, 3), np.uint8),  # a sliver
        np.zeros((360, 640), np.uint8),  # grey, not RGB
    ],
    ids=["black", "white", "noise", "empty", "sliver", "grey"],
)
def test_a_broken_or_empty_frame_gives_no_faces(frame):
    for network in ("short", "full"):
        assert blazeface.detect_faces(frame, network=network) == []


def test_a_truncated_jpeg_gives_no_faces():
    """A frame cut short in transit decodes to grey below the cut, or not at all."""
    rgb = load_rgb(require_data("faces/test/obama1.jpg"))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    broken = cv2.imdecode(np.frombuffer(jpeg.tobytes()[:200], np.uint8), cv2.IMREAD_COLOR)
    frame = np.zeros((360, 640, 3), np.uint8) if broken is None else broken[..., ::-1].copy()
    assert blazeface.detect_faces(frame) == []


def test_the_setting_picks_the_detector(env_settings, redis_client, pool, monkeypatch):
    rgb = capped(load_rgb(require_data("faces/test/obama_and_biden.jpg")))

    def loop_with(**overrides) -> CaptureLoop:
        settings = env_settings(CaptureSettings, **overrides)
        return CaptureLoop(settings, redis_client=redis_client, pool=pool, source="unused")

    assert CaptureSettings.model_fields["capture_detector"].default == "hog"
    assert loop_with().detect(rgb) == detect_faces(rgb, upsample=1)
    for network in ("short", "full"):
        chosen = loop_with(capture_detector="blazeface", capture_blazeface_network=network)
        assert chosen.detect(rgb) == blazeface.detect_faces(rgb, network=network)
        assert chosen.detect(rgb) != detect_faces(rgb, upsample=1)  # the boxes differ a little
    monkeypatch.setenv("WATCHPOST_CAPTURE_DETECTOR", "blazeface")
    assert CaptureSettings().capture_detector == "blazeface"
    monkeypatch.setenv("WATCHPOST_CAPTURE_DETECTOR", "cnn")
    with pytest.raises(ValueError, match="capture_detector"):
        CaptureSettings()


def test_capture_runs_on_blazeface_end_to_end(env_settings, redis_client, pool, prefix):
    video = require_data("video/two_people_1080p.mp4")
    settings = env_settings(CaptureSettings, capture_detector="blazeface")
    loop = CaptureLoop(settings, redis_client=redis_client, pool=pool, source=str(video))
    loop.run(threading.Event(), burst=True)
    frames = [decode(f, Frame)[0] for _, f in shards.entries(redis_client, Keys(prefix).frames)]
    assert len(frames) > 100
    assert max(len(f.faces) for f in frames) >= 2
    assert all(len({x.track_id for x in f.faces}) == len(f.faces) for f in frames)
    assert len({x.track_id for f in frames for x in f.faces}) <= 4  # two people, few breaks
    assert any(f.crops for f in frames)
