import json

import pytest

from watchpost.messages import (
    AlertEvent,
    Box,
    Frame,
    LivenessVerdict,
    MessageError,
    RecognitionVerdict,
    TrackedFace,
    Verdict,
    decode,
    encode,
)


def frame(**overrides) -> Frame:
    values = dict(
        camera_id="door-1",
        seq=7,
        captured_at=1.5,
        source_time=0.2,
        width=640,
        height=360,
        faces=[
            TrackedFace(
                track_id="abc-1", box=Box(left=1, top=2, right=50, bottom=60), detected=True
            )
        ],
    )
    values.update(overrides)
    return Frame(**values)


def liveness() -> LivenessVerdict:
    return LivenessVerdict(
        camera_id="door-1",
        track_id="abc-1",
        state="live",
        reason="1 blink",
        blinks=1,
        frames_seen=30,
        frames_with_eyes=28,
    )


def test_frame_round_trip_keeps_image_bytes_out_of_json():
    fields = encode(frame(), image=b"\xff\xd8jpeg")
    assert b"jpeg" not in fields[b"data"]
    message, image = decode(fields, Frame)
    assert message == frame()
    assert image == b"\xff\xd8jpeg"


def test_verdict_union_decodes_each_kind():
    rec = RecognitionVerdict(
        camera_id="c",
        track_id="t",
        frame_seq=1,
        captured_at=1.0,
        box=Box(left=0, top=0, right=10, bottom=10),
        threshold=0.6,
    )
    assert decode(encode(rec, image=b"x"), Verdict)[0] == rec
    verdict = liveness()
    assert decode(encode(verdict), Verdict)[0] == verdict


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.pop(b"type"), "envelope"),
        (lambda f: f.update({b"type": b"Pickle"}), "unknown message type"),
        (lambda f: f.update({b"v": b"99"}), "schema version 99"),
        (lambda f: f.update({b"v": b"one"}), "envelope"),
        (lambda f: f.update({b"data": b"{not json"}), "invalid Frame"),
        (lambda f: f.update({b"data": json.dumps({"camera_id": "x"}).encode()}), "invalid Frame"),
        (lambda f: f.pop(b"image"), "without its image"),
    ],
)
def test_malformed_entries_are_rejected_with_a_reason(mutate, reason):
    fields = encode(frame(), image=b"img")
    mutate(fields)
    with pytest.raises(MessageError, match=reason):
        decode(fields, Frame)


def test_a_message_of_another_kind_is_rejected():
    fields = encode(liveness())
    with pytest.raises(MessageError):
        decode(fields, Frame)


def test_frame_without_faces_or_with_empty_box_is_invalid():
    with pytest.raises(ValueError):
        frame(faces=[])
    with pytest.raises(ValueError):
        Box(left=10, top=0, right=10, bottom=5)


def test_image_rules_are_enforced_when_encoding():
    with pytest.raises(MessageError, match="needs an image"):
        encode(frame())
    event = AlertEvent(
        alert_id=1, kind="unknown_person", camera_id="c", track_id="t", captured_at=1, created_at=2
    )
    with pytest.raises(MessageError, match="carries no image"):
        encode(event, image=b"x")


def test_ids_with_key_metacharacters_are_refused():
    with pytest.raises(ValueError):
        frame(camera_id="door 1; DROP")
