"""Hostile input, tried systematically: every dashboard, recognition and liveness endpoint and
every stream gets corrupt, oversized, malformed and malicious input. Each answer is a clear 4xx
(never a 5xx), nothing is stored that should not be, and the service keeps serving."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.dashboard.main import create_app as dashboard_app
from services.liveness.main import create_app as liveness_app
from services.recognition.main import create_app as recognition_app
from tests.conftest import DASHBOARD_HEADERS, RECOGNITION_HEADERS, key_headers
from tests.support import shards
from watchpost.images import encode_jpeg
from watchpost.settings import DashboardSettings, LivenessSettings, RecognitionSettings

BIGINT_OVERFLOW = 2**63
GOOD_JPEG = encode_jpeg(np.full((120, 120, 3), 90, np.uint8))


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header declaring a gigapixel image, with a tiny (broken) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buffer, format="GIF")
    return buffer.getvalue()


BAD_IMAGES = {
    "empty": (b"", "empty"),
    "truncated jpeg": (GOOD_JPEG[: len(GOOD_JPEG) // 3], "corrupt or truncated"),
    "random bytes": (
        bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8)),
        "not an image",
    ),
    "text named .jpg": (b"<?php system($_GET['c']); ?>", "not an image"),
    "pixel bomb": (png_bomb(), "pixel"),
    "gif": (gif(), "not accepted"),
}


@pytest.fixture
def dashboard(env_settings, admin_key):
    # Recognition is never reached by what is refused here; a bad image stops at decoding.
    settings = env_settings(DashboardSettings, dashboard_max_upload_bytes=200_000)
    with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
        yield client


@pytest.fixture
def recognition(env_settings):
    settings = env_settings(RecognitionSettings, recognition_max_upload_bytes=200_000)
    with TestClient(recognition_app(settings), headers=DASHBOARD_HEADERS) as client:
        yield client


@pytest.fixture
def liveness(env_settings):
    settings = env_settings(LivenessSettings, liveness_max_upload_bytes=200_000)
    with TestClient(liveness_app(settings), headers=RECOGNITION_HEADERS) as client:
        yield client


def identity(client) -> int:
    return client.post("/api/v1/identities", json={"display_name": "Target"}).json()["id"]


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_refused_by_every_upload_endpoint(
    dashboard, recognition, liveness, kiosk_key, case
):
    data, reason = BAD_IMAGES[case]
    person = identity(dashboard)
    enrol = dashboard.post(f"/api/v1/identities/{person}/faces", files={"file": ("x.jpg", data)})
    assert enrol.status_code == 422 and reason in enrol.json()["rejected"][0]["reason"]
    assert dashboard.get(f"/api/v1/identities/{person}").json()["face_count"] == 0
    for path in ("/v1/faces", "/v1/identify"):
        answer = recognition.post(path, files={"file": ("x.jpg", data)})
        assert answer.status_code == 422 and reason in answer.json()["detail"], path
    verify = recognition.post(
        "/v1/verify",
        data={"login_name": "nobody"},
        files=[("file", ("x.jpg", data))],
        headers=key_headers(kiosk_key),
    )
    assert verify.status_code in (404, 422)  # unknown login or unusable image, never a 5xx
    burst = liveness.post("/v1/liveness", files=[("file", ("x.jpg", data))] * 2)
    assert burst.status_code == 422 and reason in burst.json()["detail"]
    # Still serving.
    assert recognition.post("/v1/faces", files={"file": ("ok.jpg", GOOD_JPEG)}).status_code == 200


def test_oversized_bodies_are_refused_before_they_are_read(dashboard, recognition, liveness):
    huge = b"\xff\xd8" + b"\0" * 5_000_001
    person = identity(dashboard)
    too_many = [("file", (f"{i}.jpg", huge[:300_000])) for i in range(25)]
    response = dashboard.post(f"/api/v1/identities/{person}/faces", files=too_many)
    assert response.status_code == 413 and "exceeds" in response.json()["detail"]
    json_body = b'{"display_name": "' + b"a" * 2_000_000 + b'"}'
    for client, path in (
        (dashboard, "/api/v1/identities"),
        (recognition, "/v1/faces"),
        (liveness, "/v1/liveness"),
    ):
        response = client.post(
            path, content=json_body * 40, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413, path

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(200):
            yield b"a" * 100_000

    streamed = recognition.post(
        "/v1/faces", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert streamed.status_code == 413
    assert dashboard.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"display_name": ', "application/json"),
        (b"[]", "application/json"),
        (b'"just a string"', "application/json"),
        (b'{"display_name": "x", "unexpected": 1}', "application/json"),
        (b'{"display_name": 5}', "application/json"),
        (b"display_name=x", "application/x-www-form-urlencoded"),
        (b"display_name: x", "text/plain"),
        (b"\xff\xfe\x00garbage", "application/json"),
    ],
)
def test_malformed_json_and_wrong_content_types(dashboard, body, content_type):
    response = dashboard.post(
        "/api/v1/identities", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    assert dashboard.get("/api/v1/identities").json()["total"] == 0


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE identities;--",
        "../../../../etc/passwd",
        "%s %n %x {0} ${jndi:ldap://x}",
        "<script>alert(1)</script>",
        "名前 😀 Ñandú",
        "a" * 200,
    ],
)
def test_metacharacters_in_names_are_stored_as_text(dashboard, name):
    created = dashboard.post("/api/v1/identities", json={"display_name": name, "login_name": name})
    assert created.status_code == 201
    assert (
        dashboard.get(f"/api/v1/identities/{created.json()['id']}").json()["display_name"] == name
    )
    found = dashboard.get("/api/v1/identities", params={"q": name[:50]}).json()
    assert [i["display_name"] for i in found["items"]] == [name]
    wildcard = dashboard.get("/api/v1/identities", params={"q": "%"}).json()["total"]
    assert wildcard == (1 if "%" in name else 0)  # % is a character, not a LIKE wildcard


@pytest.mark.parametrize("name", ["nul\x00byte", "", "   ", "a" * 201, "\x00", "tab\tname"])
def test_unstorable_names_are_refused_not_crashed(dashboard, name):
    response = dashboard.post("/api/v1/identities", json={"display_name": name})
    assert response.status_code == 422, response.text
    metadata = dashboard.post(
        "/api/v1/identities", json={"display_name": "ok", "metadata": {"k": ["x\x00"]}}
    )
    assert metadata.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/identities/999999"),
        ("get", f"/api/v1/identities/{BIGINT_OVERFLOW}"),
        ("get", "/api/v1/identities/-1"),
        ("get", "/api/v1/identities/abc"),
        ("patch", f"/api/v1/identities/{BIGINT_OVERFLOW}"),
        ("delete", f"/api/v1/identities/{BIGINT_OVERFLOW}"),
        ("get", f"/api/v1/faces/{BIGINT_OVERFLOW}/image"),
        ("delete", "/api/v1/faces/0"),
        ("get", f"/api/v1/alerts/{BIGINT_OVERFLOW}"),
        ("get", f"/api/v1/alerts/{BIGINT_OVERFLOW}/snapshot"),
        ("post", f"/api/v1/alerts/{BIGINT_OVERFLOW}/ack"),
        ("get", "/api/v1/cameras/..%2F..%2Fetc"),
        ("get", "/api/v1/cameras/" + "x" * 300),
        ("delete", "/api/v1/cameras/nope"),
        ("get", "/api/v1/alerts?limit=0"),
        ("get", "/api/v1/alerts?limit=100000000"),
        ("get", "/api/v1/alerts?since=0000-00-00"),
        ("get", "/api/v1/identities?offset=-5"),
        ("get", f"/api/v1/identities?offset={BIGINT_OVERFLOW}"),
        ("get", f"/api/v1/audit?before_id={BIGINT_OVERFLOW}"),
    ],
)
def test_unknown_and_out_of_range_ids_are_4xx(dashboard, method, path):
    kwargs = {"json": {"display_name": "x"}} if method in ("patch", "post") else {}
    response = dashboard.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.parametrize("query", ["before_id", "identity_id"])
def test_filters_beyond_any_id_match_nothing(dashboard, query):
    response = dashboard.get(f"/api/v1/alerts?{query}={BIGINT_OVERFLOW}")
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"image": "!!!not base64!!!"}, "base64"),
        ({"image": base64.b64encode(b"GIF89a....").decode()}, "JPEG"),
        ({"image": base64.b64encode(GOOD_JPEG[:40]).decode()}, "corrupt"),
        ({"type": "burglary"}, "type"),
        ({"time": "not a time"}, "time"),
        ({"login_name": "x" * 10_000}, "login_name"),
    ],
)
def test_legacy_alerts_with_bad_fields_are_refused(dashboard, payload, reason):
    body = {
        "login_name": "ann",
        "time": "2026-11-25T10:00:00Z",
        "type": "unknown_person",
        "image": base64.b64encode(GOOD_JPEG).decode(),
        **payload,
    }
    response = dashboard.post("/dashboard", json=body)
    assert response.status_code == 422 and reason in response.text, response.text
    assert dashboard.get("/api/v1/alerts").json() == []


@pytest.mark.data
def test_hostile_stream_messages_are_dead_lettered_and_the_rest_still_flows(
    env_settings, redis_client, pool, prefix
):
    """Every consumer gets malformed entries mixed with good ones: the bad ones land in the
    dead-letter stream with a reason and are acked (never retried for ever), the good ones give
    their verdicts and alert."""
    from collections import Counter

    from tests.conftest import require_data
    from tests.support.frames import frame_of, load_rgb
    from tests.support.pipeline import run_consumers
    from watchpost.keys import Keys
    from watchpost.streams import publish

    keys = Keys(prefix)
    rgb = load_rgb(require_data("faces/train/obama/obama.jpg"))
    good, jpeg = frame_of(rgb, camera_id="door")
    data = good.model_dump_json().encode()
    outside = good.model_copy(
        update={
            "faces": [
                good.faces[0].model_copy(
                    update={"box": good.faces[0].box.model_copy(
                        update={"left": -90_000, "top": -90_000, "right": 90_000, "bottom": 90_000}
                    )}
                )
            ]
        }
    )  # fmt: skip
    hostile = [
        {b"type": b"Frame", b"v": b"1", b"data": b"{not json", b"image": jpeg},
        {b"type": b"Bomb", b"v": b"1", b"data": data, b"image": jpeg},
        {b"type": b"Frame", b"v": b"99", b"data": data, b"image": jpeg},
        {b"type": b"Frame", b"v": b"1", b"data": b'{"camera_id": "door"}', b"image": jpeg},
        {b"type": b"Frame", b"v": b"1", b"data": data},  # no image
        {b"type": b"Frame", b"v": b"1", b"data": data, b"image": b"\xff\xd8 not a jpeg"},
        {b"type": b"Frame", b"v": b"1", b"data": data.replace(b'"door"', b'"../etc"')},
        {b"garbage": b"\x00" * 10},
    ]
    for fields in hostile:
        redis_client.xadd(keys.frames.of("door"), fields)
    publish(redis_client, keys.frames.of("door"), outside, image=jpeg)  # box outside the picture
    publish(redis_client, keys.frames.of("door"), good, image=jpeg)
    redis_client.xadd(
        keys.verdicts.of("door"), {b"type": b"RecognitionVerdict", b"v": b"1", b"data": b"[]"}
    )

    processed = run_consumers(env_settings, redis_client, pool)

    dead = redis_client.xrange(keys.dead_letter)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    # 8 malformed frames for each of the two frame consumers, 1 malformed verdict.
    by_group = Counter(fields[b"group"].decode() for _, fields in dead)
    # Each frame consumer dead-letters the 7 malformed envelopes; liveness also the undecodable
    # JPEG after 3 tries. Recognition may instead ack that one unread: by the time it came back
    # to it, the good frame had given the same track its check, so it needed no picture.
    assert by_group["liveness"] == len(hostile) and by_group["aggregator"] == 1, reasons
    assert by_group["recognition"] in (len(hostile) - 1, len(hostile)), reasons
    assert any("undecodable frame" in r for r in reasons)
    for group in ("recognition", "liveness"):
        assert shards.pending(redis_client, keys.frames, group) == 0
    assert shards.pending(redis_client, keys.verdicts, "aggregator") == 0
    assert processed["recognition"] >= 1 and processed["liveness"] >= 1
    # The good frame was judged: its face has a recognition verdict on the bus.
    types = Counter(f[b"type"] for _, f in shards.entries(redis_client, keys.verdicts))
    assert types[b"RecognitionVerdict"] >= 1
