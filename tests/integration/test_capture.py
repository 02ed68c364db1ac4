"""Capture on real video: files, a simulated network camera, and sources that fail."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from services.capture.loop import CaptureLoop
from services.capture.source import SourceError
from tests.conftest import require_data
from tests.support import shards
from tests.support.mjpeg_camera import MjpegCamera
from tests.support.values import present
from tests.support.waiting import eventually
from watchpost.db import cameras
from watchpost.keys import Keys
from watchpost.messages import Frame, decode
from watchpost.settings import CaptureSettings
from watchpost.vision.tracking import iou

pytestmark = pytest.mark.data


def published(redis_client, prefix) -> list[Frame]:
    return [
        decode(fields, Frame)[0] for _, fields in shards.entries(redis_client, Keys(prefix).frames)
    ]


def run_capture(env_settings, redis_client, pool, source, **overrides) -> CaptureLoop:
    loop = CaptureLoop(
        env_settings(CaptureSettings, **overrides),
        redis_client=redis_client,
        pool=pool,
        source=str(source),
    )
    loop.run(threading.Event(), burst=True)
    return loop


@pytest.mark.slow
def test_a_face_is_tracked_through_a_video_with_one_track_id(
    env_settings, redis_client, pool, prefix
):
    video = require_data("video/talking_blinks_720p.mp4")
    run_capture(env_settings, redis_client, pool, video)
    frames = published(redis_client, prefix)
    assert len(frames) > 280  # 301 frames, the face is in (nearly) all of them
    tracks = {face.track_id for f in frames for face in f.faces}
    assert len(tracks) == 1
    assert frames[0].width == 640 and frames[0].height == 360  # downscaled from 1280x720
    assert (
        sum(face.detected for f in frames for face in f.faces) < len(frames) / 3
    )  # tracked in between
    with pool.connection() as conn:
        assert present(cameras.get_camera(conn, "demo"))["status"] == "ended"


def test_blazeface_follows_a_face_between_its_detections_where_the_correlation_tracker_does(
    env_settings, redis_client, pool, prefix
):
    """The detector's own step (`capture_follow=detector`, one network pass around the last box)
    keeps the speaker in one track on every frame, with boxes where the correlation tracker puts
    them, on the frames between detections."""
    video = require_data("video/talking_blinks_720p.mp4")
    boxes = {}
    for follow in ("correlation", "detector"):
        redis_client.delete(*Keys(prefix).frames)
        run_capture(
            env_settings,
            redis_client,
            pool,
            video,
            capture_detector="blazeface",
            capture_follow=follow,
        )
        frames = published(redis_client, prefix)
        assert len(frames) > 280, follow
        assert len({face.track_id for f in frames for face in f.faces}) == 1, follow
        boxes[follow] = {f.seq: f.faces[0] for f in frames if len(f.faces) == 1}
    between = [s for s, face in boxes["detector"].items() if not face.detected]
    assert len(between) > 200  # 4 frames in 5 are followed, not detected
    overlaps = [
        iou(boxes["detector"][s].box.as_tuple(), boxes["correlation"][s].box.as_tuple())
        for s in between
        if s in boxes["correlation"]
    ]
    assert len(overlaps) > 200
    assert np.median(overlaps) > 0.8 and min(overlaps) > 0.5


def test_several_people_get_separate_tracks(env_settings, redis_client, pool, prefix):
    video = require_data("video/two_people_1080p.mp4")
    run_capture(env_settings, redis_client, pool, video)
    frames = published(redis_client, prefix)
    assert max(len(f.faces) for f in frames) >= 2
    assert all(len({x.track_id for x in f.faces}) == len(f.faces) for f in frames)


def test_face_crops_are_cut_at_camera_resolution(env_settings, redis_client, pool, prefix):
    """The bus frame is scaled to 640 px; the passive attack check gets squares cut from the
    1080p camera frame, every third frame of each track."""
    video = require_data("video/two_people_1080p.mp4")
    run_capture(env_settings, redis_client, pool, video, capture_crop_every=3)
    entries = shards.entries(redis_client, Keys(prefix).frames)
    crops = 0
    for _, fields in entries:
        frame, _ = decode(fields, Frame)
        assert frame.width == 640
        for crop in frame.crops:
            face = next(f for f in frame.faces if f.track_id == crop.track_id)
            scale = crop.camera_width / frame.width
            assert crop.camera_width == 1920
            # The square holds the face as the camera saw it: about 1.5x its size, in camera px.
            assert crop.square.width >= 1.4 * face.box.width * scale - 4 or (
                crop.square.left == 0 or crop.square.right == 1920
            )
            picture = cv2.imdecode(
                np.frombuffer(fields[b"att:" + crop.attachment.encode()], np.uint8),
                cv2.IMREAD_COLOR,
            )
            assert present(picture).shape[0] == min(crop.square.height, 256)
            assert present(picture).shape[0] > face.box.height  # more pixels than the bus frame had
            crops += 1
    faces = sum(len(decode(f, Frame)[0].faces) for _, f in entries)
    assert faces / 4 < crops <= faces / 3 + 4


def test_frames_without_faces_are_not_published(env_settings, redis_client, pool, prefix, tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(20):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    loop = run_capture(env_settings, redis_client, pool, path, camera_source_dirs=[tmp_path])
    assert loop.frames_published == 0 and published(redis_client, prefix) == []


def test_a_network_camera_stream_is_read(env_settings, redis_client, pool, prefix):
    video = require_data("video/talking_blinks_720p.mp4")
    with MjpegCamera(video, fps=200, max_frames=40) as camera:
        loop = run_capture(
            env_settings, redis_client, pool, camera.url, camera_source_hosts=["127.0.0.1/32"]
        )
    assert loop.frames_published >= 30
    assert published(redis_client, prefix)[0].width == 640


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("/nonexistent/door.mp4", "video file not found"),
        ("http://127.0.0.1:9/unreachable.mjpg", "could not open video source"),
        ("ftp://camera.local/x", "ftp sources are not allowed"),
    ],
)
def test_bad_sources_give_a_clear_camera_status(env_settings, redis_client, pool, source, reason):
    allow_all = {
        "camera_source_dirs": ["/"],
        "camera_source_hosts": ["0.0.0.0/0"],
    }
    with pytest.raises(SourceError, match=reason):
        run_capture(env_settings, redis_client, pool, source, **allow_all)
    with pool.connection() as conn:
        row = present(cameras.get_camera(conn, "demo"))
    assert row["status"] == "error" and reason in row["last_error"]


def test_a_file_that_is_not_a_video_is_an_error(env_settings, redis_client, pool, tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError, match="could not open"):
        run_capture(env_settings, redis_client, pool, path, camera_source_dirs=[tmp_path])


def test_without_a_burst_the_loop_keeps_retrying_a_bad_source_until_stopped(
    env_settings, redis_client, pool
):
    loop = CaptureLoop(
        env_settings(CaptureSettings, capture_reconnect_seconds=0.05, camera_source_dirs=["/"]),
        redis_client=redis_client,
        pool=pool,
        source="/nonexistent.mp4",
    )
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and loop.status == "error"  # the service stays up, saying why
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_the_supervisor_follows_camera_changes_without_a_restart(
    env_settings, redis_client, pool, prefix
):
    from services.capture.supervisor import CaptureSupervisor

    video = require_data("video/two_people_1080p.mp4")
    settings = env_settings(CaptureSettings, capture_loop=True, capture_cameras_check_seconds=0.1)
    supervisor = CaptureSupervisor(
        settings, redis_client=redis_client, pool=pool, default_source=None
    )
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        with pool.connection() as conn:
            cameras.create_camera(conn, camera_id="lobby", name="Lobby", source=str(video))
        redis_client.incr(Keys(prefix).cameras_version)
        assert eventually(
            lambda: any(f.camera_id == "lobby" for f in published(redis_client, prefix))
        )
        assert eventually(lambda: redis_client.exists(Keys(prefix).live_frame("lobby")))
        with pool.connection() as conn:
            cameras.update_camera(conn, "lobby", enabled=False)
        redis_client.incr(Keys(prefix).cameras_version)
        assert eventually(lambda: "lobby" not in supervisor.running)

        def status() -> str:
            with pool.connection() as conn:
                return present(cameras.get_camera(conn, "lobby"))["status"]

        assert eventually(lambda: status() == "stopped"), status()
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and supervisor.running == {}


def test_a_file_that_ended_is_not_played_again(env_settings, redis_client, pool, prefix):
    from services.capture.supervisor import CaptureSupervisor

    video = require_data("video/two_people_1080p.mp4")
    settings = env_settings(
        CaptureSettings, capture_realtime=False, capture_cameras_check_seconds=0.05
    )
    supervisor = CaptureSupervisor(
        settings, redis_client=redis_client, pool=pool, default_source=str(video)
    )
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        assert eventually(
            lambda: (
                "demo" in supervisor.running and supervisor.running["demo"].loop.status == "ended"
            ),
            timeout=180,  # the whole 1080p clip, detected unpaced: ~10 s quiet, far more on load
        )
        played = supervisor.running["demo"].loop.frames_published
        redis_client.incr(Keys(prefix).cameras_version)  # a reconcile must not restart it
        assert eventually(
            lambda: supervisor._version == redis_client.get(Keys(prefix).cameras_version)
        )
        import time

        time.sleep(0.3)
        assert supervisor.running["demo"].loop.frames_published == played
        assert len(published(redis_client, prefix)) == played
    finally:
        stop.set()
        thread.join(30)
