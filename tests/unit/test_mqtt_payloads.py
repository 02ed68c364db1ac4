"""What goes over MQTT: names only for known people, no source or credentials of a camera, Home
Assistant ids from any camera id."""

from __future__ import annotations

from datetime import UTC, datetime

from services.dashboard.mqtt import (
    Topics,
    camera_payload,
    discovery_configs,
    ha_id,
    sighting_payload,
)

SEEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sighting(**overrides):
    row = {
        "id": 7, "camera_id": "door", "track_id": "ab-1", "identity_id": None,
        "display_name": None, "group_id": 3, "liveness": "live", "first_seen": SEEN,
        "last_seen": SEEN, "checks": 3, "votes": 3, "ended": False,
        "embedding": [0.1] * 128, "snapshot_jpeg": b"\xff\xd8", "face_jpeg": b"\xff\xd8",
    }  # fmt: skip
    return {**row, **overrides}


def test_an_unknown_face_is_not_named_and_no_picture_or_embedding_goes_out():
    payload = sighting_payload(sighting())
    assert payload["name"] == "unknown" and payload["known"] is False
    assert payload["unknown_group_id"] == 3 and payload["last_seen"] == SEEN.timestamp()
    assert not {"embedding", "snapshot_jpeg", "face_jpeg", "face", "snapshot"} & set(payload)
    known = sighting_payload(sighting(identity_id=4, display_name="Ada Lovelace"))
    assert known["name"] == "Ada Lovelace" and known["known"] is True


def test_a_camera_status_keeps_its_source_and_credentials_to_itself():
    camera = {
        "id": "door", "name": "Front door", "enabled": True, "status": "error", "fps": None,
        "source": "rtsp://admin:hunter2@10.0.0.9/s", "last_frame_at": None,
        "last_error": "cannot open rtsp://admin:hunter2@10.0.0.9/s", "updated_at": SEEN,
    }  # fmt: skip
    payload = camera_payload(camera)
    assert "source" not in payload and "hunter2" not in str(payload)
    assert payload["last_error"] == "cannot open rtsp://***@10.0.0.9/s"


def test_home_assistant_ids_from_any_camera_id():
    assert ha_id("lobby.cam:2") == "lobby_cam_2"
    topics = Topics("site/a", "homeassistant")
    assert topics.node("lobby.cam:2") == "site_a_lobby_cam_2"
    configs = discovery_configs(topics, {"id": "lobby.cam:2", "name": ""}, event_seconds=5)
    assert all("/site_a_lobby_cam_2/" in topic for topic in configs)
    assert {c["device"]["name"] for c in configs.values()} == {"lobby.cam:2"}  # no name: its id
    assert {c["state_topic"].split("/")[3] for c in configs.values()} <= {"lobby.cam:2"}
