"""Login-kiosk use: 1:1 verification of a claimed login and liveness of a burst of frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.liveness.main import create_app as liveness_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import RECOGNITION_HEADERS, key_headers, require_data
from tests.support.frames import load_rgb
from tests.support.servers import serving
from tests.support.values import present
from watchpost.db import audit_log, identities
from watchpost.images import encode_jpeg
from watchpost.settings import LivenessSettings, RecognitionSettings
from watchpost.vision.faces import detect_faces, embed_face

pytestmark = pytest.mark.data


def video_frames(seconds: float, start: float = 0.0) -> list[bytes]:
    """JPEG frames of the talking video (30 fps) at 640 px, as a kiosk would send them."""
    capture = cv2.VideoCapture(str(require_data("video/talking_blinks_720p.mp4")))
    capture.set(cv2.CAP_PROP_POS_MSEC, start * 1000)
    frames = []
    for _ in range(int(seconds * 30)):
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.imencode(".jpg", cv2.resize(bgr, (640, 360)))[1].tobytes())
    return frames


def as_files(frames: list[bytes]) -> list:
    return [("file", (f"f{i:03}.jpg", data, "image/jpeg")) for i, data in enumerate(frames)]


def enrol(pool, name: str, login: str, rgb: np.ndarray) -> int:
    with pool.connection() as conn:
        person = identities.create_identity(conn, display_name=name, login_name=login)
        box = detect_faces(rgb, upsample=1)[0]
        identities.add_face_sample(
            conn, identity_id=person["id"], embedding=embed_face(rgb, box), box=box, image_jpeg=b"x"
        )
        return person["id"]


@pytest.fixture
def liveness_client(env_settings):
    with TestClient(
        liveness_app(env_settings(LivenessSettings)), headers=RECOGNITION_HEADERS
    ) as client:
        yield client


@pytest.mark.slow
def test_a_burst_with_a_blink_is_live(liveness_client):
    response = liveness_client.post(
        "/v1/liveness", data={"fps": "30"}, files=as_files(video_frames(2.0))
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["state"] == "live" and report["blinks"] >= 1
    assert report["frames_seen"] == 60 and report["frames_with_face"] == 60


def test_a_burst_of_one_still_photo_is_not_live(liveness_client):
    photo = require_data("faces/test/obama1.jpg").read_bytes()
    response = liveness_client.post(
        "/v1/liveness", data={"fps": "10"}, files=as_files([photo] * 20)
    )
    report = response.json()
    assert report["state"] == "undecided" and report["blinks"] == 0  # 2 s: too short to call spoof
    assert report["frames_with_eyes"] == 20


def test_burst_bad_input(liveness_client, env_settings):
    blank = encode_jpeg(np.full((120, 160, 3), 90, np.uint8))
    report = liveness_client.post("/v1/liveness", files=as_files([blank] * 3)).json()
    assert report["state"] == "undecided" and report["reason"] == "no face in any frame"
    bad = liveness_client.post("/v1/liveness", files=as_files([blank, b"not a jpeg"]))
    assert bad.status_code == 422 and "frame 1 (f001.jpg)" in bad.json()["detail"]
    assert (
        liveness_client.post("/v1/liveness", data={"fps": "0"}, files=as_files([blank])).status_code
        == 422
    )
    with TestClient(
        liveness_app(env_settings(LivenessSettings, liveness_max_frames=2)),
        headers=RECOGNITION_HEADERS,
    ) as small:
        too_many = small.post("/v1/liveness", files=as_files([blank] * 3))
        assert too_many.status_code == 422 and "at most 2 frames" in too_many.json()["detail"]


@pytest.fixture
def recognition_client(env_settings, kiosk_key):
    with TestClient(
        recognition_app(env_settings(RecognitionSettings)), headers=key_headers(kiosk_key)
    ) as client:
        yield client


def test_verify_a_claimed_login(recognition_client, pool):
    faces = require_data("faces")
    enrol(pool, "Barack Obama", "obama", load_rgb(faces / "train/obama/obama.jpg"))
    with pool.connection() as conn:
        identities.create_identity(conn, display_name="No Face Yet", login_name="nobody")

    def verify(login: str, *photos: bytes):
        return recognition_client.post(
            "/v1/verify", data={"login_name": login}, files=as_files(list(photos))
        )

    genuine = verify("obama", (faces / "test/obama1.jpg").read_bytes())
    assert genuine.status_code == 200, genuine.text
    assert genuine.json()["match"] and genuine.json()["distance"] < 0.6
    assert genuine.json()["liveness"] is None and "burst" in genuine.json()["liveness_note"]
    impostor = verify("obama", (faces / "train/biden/biden.jpg").read_bytes())
    assert impostor.status_code == 200 and not impostor.json()["match"]
    assert verify("nosuchlogin", (faces / "test/obama1.jpg").read_bytes()).status_code == 404
    assert verify("nobody", (faces / "test/obama1.jpg").read_bytes()).status_code == 409
    no_face = verify("obama", encode_jpeg(np.full((100, 100, 3), 9, np.uint8)))
    assert no_face.status_code == 422 and "no face" in no_face.json()["detail"]
    assert verify("obama", b"garbage").status_code == 422
    # The audit log names the kiosk that verified whom, and what came of it.
    with pool.connection() as conn:
        verified = [e for e in audit_log.list_audit(conn) if e["action"] == "verify"]
    assert [(e["actor"].split(" ")[0], e["details"]["match"]) for e in reversed(verified)] == [
        ("test-kiosk", True),
        ("test-kiosk", False),
    ]


@pytest.mark.slow
def test_verify_a_kiosk_burst_with_liveness(env_settings, pool, kiosk_key):
    """The speaker, enrolled from a frame 5 s in, logs in with 2 s of video from the start."""
    speaker = cv2.cvtColor(
        present(
            cv2.imdecode(np.frombuffer(video_frames(0.1, start=5.0)[0], np.uint8), cv2.IMREAD_COLOR)
        ),
        cv2.COLOR_BGR2RGB,
    )
    enrol(pool, "Speaker", "speaker", speaker)
    with serving(liveness_app(env_settings(LivenessSettings))) as liveness_url:
        settings = env_settings(RecognitionSettings, recognition_liveness_url=liveness_url)
        with TestClient(recognition_app(settings), headers=key_headers(kiosk_key)) as client:
            response = client.post(
                "/v1/verify",
                data={"login_name": "speaker", "fps": "30"},
                files=as_files(video_frames(2.0)),
            )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["match"] and result["frames_with_face"] == 60
    assert result["liveness"]["state"] == "live"


@pytest.mark.slow
def test_a_spliced_burst_is_refused(recognition_client, pool):
    """A victim's photo spliced into the attacker's own blinking frames: refused before either
    the match or the liveness answer can count."""
    faces = require_data("faces")
    enrol(pool, "Barack Obama", "obama", load_rgb(faces / "train/obama/obama.jpg"))
    victim = cv2.resize(
        present(cv2.imread(str(faces / "test/obama1.jpg"))),
        (640, 360),
        interpolation=cv2.INTER_AREA,
    )
    burst = video_frames(1.0)
    burst[10:14] = [cv2.imencode(".jpg", victim)[1].tobytes()] * 4
    response = recognition_client.post(
        "/v1/verify", data={"login_name": "obama", "fps": "30"}, files=as_files(burst)
    )
    assert response.status_code == 422
    assert "different faces" in response.json()["detail"]


def test_verify_uses_the_1_to_1_threshold_and_scores_the_identity(env_settings, pool, kiosk_key):
    faces = require_data("faces")
    obama = enrol(pool, "Barack Obama", "obama", load_rgb(faces / "train/obama/obama.jpg"))
    second = load_rgb(faces / "train/obama/obama2.jpg")
    box = detect_faces(second, upsample=1)[0]
    with pool.connection() as conn:
        identities.add_face_sample(
            conn, identity_id=obama, embedding=embed_face(second, box), box=box, image_jpeg=b"x"
        )
    probe = (faces / "test/obama1.jpg").read_bytes()
    results = {}
    for k, threshold in ((1, 0.6), (2, 0.6), (2, 0.05)):
        settings = env_settings(
            RecognitionSettings,
            recognition_score_k=k,
            recognition_verify_threshold=threshold,
            recognition_threshold=0.01,  # 1:N's threshold plays no part in 1:1
        )
        with TestClient(recognition_app(settings), headers=key_headers(kiosk_key)) as client:
            answer = client.post(
                "/v1/verify", data={"login_name": "obama"}, files=as_files([probe])
            ).json()
        results[(k, threshold)] = answer
    assert results[(1, 0.6)]["match"] and results[(2, 0.6)]["match"]
    assert results[(2, 0.6)]["threshold"] == 0.6
    # k=2: the mean over both photos, no nearer than the nearest one alone.
    assert results[(2, 0.6)]["distance"] > results[(1, 0.6)]["distance"]
    assert not results[(2, 0.05)]["match"]
