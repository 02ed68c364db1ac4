import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import ValidationError

from watchpost.geometry import Box
from watchpost.messages import (
    AlertEvent,
    AlertKind,
    AttackCue,
    FaceCrop,
    Frame,
    LivenessVerdict,
    Message,
    MessageError,
    RecognitionVerdict,
    TrackedFace,
    Verdict,
    attachments,
    decode,
    encode,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


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
        id=1,
        kind=AlertKind.UNKNOWN_PERSON,
        camera_id="c",
        track_id="t",
        captured_at=NOW,
        created_at=NOW,
    )
    with pytest.raises(MessageError, match="carries no image"):
        encode(event, image=b"x")


def test_ids_with_key_metacharacters_are_refused():
    with pytest.raises(ValueError):
        frame(camera_id="door 1; DROP")


def crop(track_id="abc-1"):
    return FaceCrop(
        track_id=track_id, square=Box(left=0, top=0, right=90, bottom=90), camera_width=1920
    )


def test_a_frame_carries_its_camera_resolution_crops_as_attachments():
    message = frame(crops=[crop()])
    fields = encode(message, image=b"img", attachments={"crop:abc-1": b"\xff\xd8crop"})
    assert b"crop" not in fields[b"data"].replace(b'"crops"', b"")  # pictures stay out of JSON
    decoded, _ = decode(fields, Frame)
    assert decoded == message
    assert attachments(decoded, fields) == {"crop:abc-1": b"\xff\xd8crop"}


@pytest.mark.parametrize(
    ("crops", "given", "error"),
    [
        ([crop()], {}, "names attachments"),  # a crop named but not sent
        ([], {"crop:abc-1": b"x"}, "names attachments"),  # a picture nobody names
        ([crop()], {"crop:abc-1": b""}, "is empty"),
    ],
)
def test_attachments_must_match_what_the_message_names(crops, given, error):
    with pytest.raises(MessageError, match=error):
        encode(frame(crops=crops), image=b"img", attachments=given)


def test_an_entry_that_lost_its_crop_is_rejected():
    fields = encode(frame(crops=[crop()]), image=b"img", attachments={"crop:abc-1": b"x"})
    del fields[b"att:crop:abc-1"]
    with pytest.raises(MessageError, match="without its attachment"):
        decode(fields, Frame)


def test_a_crop_must_belong_to_one_of_the_frames_faces():
    with pytest.raises(ValueError, match="not among the frame's faces"):
        frame(crops=[crop("someone-else")])
    with pytest.raises(ValueError, match="at most one crop per track"):
        frame(crops=[crop(), crop()])


# Versions: additive changes keep the version and older consumers ignore what they do not know;
# a bump needs an upgrade step; a version newer than the consumer's is refused with a reason.


def test_fields_a_consumer_does_not_know_are_ignored_even_nested():
    verdict = LivenessVerdict(
        camera_id="door", track_id="t1", state="live", reason="", blinks=1, frames_seen=3,
        frames_with_eyes=3, cues=[AttackCue(name="motion", score=0.1, threshold=0.5, samples=2,
                                            flagged=False, decides=True)],
    )  # fmt: skip
    fields = encode(verdict)
    payload = json.loads(fields[b"data"])
    payload["added_by_a_newer_producer"] = {"any": "thing"}
    payload["cues"][0]["also_new"] = 1.5
    fields[b"data"] = json.dumps(payload).encode()
    assert decode(fields, Verdict)[0] == verdict


def test_our_own_code_still_cannot_build_a_message_with_a_misspelt_field():
    with pytest.raises(ValidationError, match="extra"):
        AlertEvent.model_validate({**alert_payload(), "kindd": "x"})


def alert_payload() -> dict:
    return {
        "id": 1, "kind": "unknown_person", "camera_id": "door", "track_id": "t1",
        "captured_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:01Z",
    }  # fmt: skip


class VersionProbe(Message):
    """A message whose version 1 called `seconds` `secs`: version 2 renamed it."""

    schema_version: ClassVar[int] = 2
    upgrades: ClassVar[dict[int, Callable[[dict], dict]]] = {
        1: lambda old: {"seconds": old.pop("secs"), **old}
    }
    seconds: float


def probe_fields(version: int, data: dict) -> dict[bytes, bytes]:
    return {
        b"type": b"VersionProbe",
        b"v": str(version).encode(),
        b"data": json.dumps(data).encode(),
    }


def test_an_older_version_is_upgraded_step_by_step():
    assert decode(probe_fields(1, {"secs": 2.5}), VersionProbe)[0] == VersionProbe(seconds=2.5)
    assert decode(probe_fields(2, {"seconds": 3.0}), VersionProbe)[0].seconds == 3.0


@pytest.mark.parametrize(
    ("version", "reason"),
    [(3, "newer than this consumer reads"), (0, "no upgrade from it")],
)
def test_a_version_without_a_path_is_refused_with_a_reason(version, reason):
    with pytest.raises(MessageError, match=reason):
        decode(probe_fields(version, {"seconds": 1.0}), VersionProbe)


def test_a_version_1_alert_event_reads_as_the_public_alert():
    v1 = {
        "alert_id": 7, "kind": "spoof_attempt", "camera_id": "door", "track_id": "t1",
        "identity_id": None, "display_name": None, "distance": None, "liveness": "spoof",
        "reason": "no blink", "captured_at": 1_767_225_600.0, "created_at": 1_767_225_601.5,
        "evidence_at": 1_767_225_600.5,
    }  # fmt: skip
    fields = {b"type": b"AlertEvent", b"v": b"1", b"data": json.dumps(v1).encode()}
    event, _ = decode(fields, AlertEvent)
    assert event.id == event.alert_id == 7 and event.kind == AlertKind.SPOOF_ATTEMPT
    assert event.created_at == datetime(2026, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)
    assert event.evidence_at == 1_767_225_600.5 and event.face_url is None
    assert json.loads(encode(event)[b"v"]) == 2
