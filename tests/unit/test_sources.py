"""The camera-source allow-list and credential redaction (pure; names resolve through a table,
except where the real resolver is the point)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchpost.settings import CaptureSettings
from watchpost.sources import PRIVATE_NETWORKS, SourceNotAllowed, SourcePolicy, redact

NAMES = {
    "cam1.lan": ["192.168.1.20"],
    "sneaky.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "split.example": ["10.0.0.7", "8.8.8.8"],
    "cam.site.example": ["203.0.113.9"],
}


def policy(tmp_path: Path, kinds=("file", "rtsp", "rtsps", "http", "https"), hosts=None):
    return SourcePolicy(
        kinds=frozenset(kinds),
        hosts=tuple(hosts if hosts is not None else PRIVATE_NETWORKS),
        dirs=(tmp_path / "videos",),
    )


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "door.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (folder / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    return folder


ALLOWED = [
    "{videos}/door.mp4",
    "{videos}/not-yet-there.mp4",  # capture says "not found", not "not allowed"
    "rtsp://10.0.0.5/stream",
    "rtsp://user:pass@192.168.1.9:554/h264",
    "http://172.20.0.3:8080/video.mjpg",
    "rtsp://cam1.lan/live",  # resolves into a private network
    "https://[fd00::5]/cam",
]
REFUSED = [
    ("/etc/passwd", "outside the folders"),
    ("{videos}/../secret.mp4", "outside the folders"),
    ("{videos}/link.mp4", "outside the folders"),  # a symbolic link out of the folder
    ("file:///etc/shadow", "outside the folders"),
    ("0", "webcam sources are not allowed"),
    ("ftp://10.0.0.5/x", "ftp sources are not allowed"),
    ("http://127.0.0.1:8001/v1/faces", "outside the networks"),  # the host's own services
    ("http://localhost:6379/", "outside the networks"),
    ("http://169.254.169.254/latest/meta-data/", "outside the networks"),
    ("http://[::ffff:127.0.0.1]/", "outside the networks"),
    ("http://[::1]:8000/", "outside the networks"),
    ("rtsp://sneaky.example/x", "outside the networks"),
    ("rtsp://metadata.example/x", "outside the networks"),
    ("rtsp://split.example/x", "8.8.8.8"),  # every address must be allowed
    ("rtsp://cam.site.example/x", "outside the networks"),
    ("rtsp://nowhere.invalid/x", "does not resolve"),
    ("http:///nohost", "names no host"),
]


def table_resolver(host: str) -> list[str]:
    return {"localhost": ["127.0.0.1", "::1"], **NAMES}.get(host, [])


@pytest.mark.parametrize("source", ALLOWED)
def test_allowed_sources(tmp_path, videos, source):
    policy(tmp_path).check(source.format(videos=videos), resolve=table_resolver)


@pytest.mark.parametrize(("source", "reason"), REFUSED)
def test_refused_sources_say_why(tmp_path, videos, source, reason):
    with pytest.raises(SourceNotAllowed, match=reason):
        policy(tmp_path).check(source.format(videos=videos), resolve=table_resolver)


def test_names_and_wildcards_in_the_list_are_allowed_whatever_they_resolve_to(tmp_path):
    named = policy(tmp_path, hosts=["cam.site.example", "*.cameras.example"])
    named.check("rtsp://cam.site.example/x", resolve=table_resolver)
    named.check("rtsp://door.cameras.example/x", resolve=table_resolver)
    with pytest.raises(SourceNotAllowed):
        named.check("rtsp://cameras.example.evil/x", resolve=table_resolver)
    with pytest.raises(SourceNotAllowed):
        named.check("rtsp://10.0.0.5/x", resolve=table_resolver)  # no network listed


def test_webcams_only_when_listed(tmp_path):
    policy(tmp_path, kinds=("webcam",)).check("0")
    with pytest.raises(SourceNotAllowed, match="file sources"):
        policy(tmp_path, kinds=("webcam",)).check("/dev/video0")


def test_the_real_resolver_sees_through_numeric_host_spellings(tmp_path):
    # 2130706433 is 127.0.0.1 written as one number: the system resolver says so.
    with pytest.raises(SourceNotAllowed, match=r"127\.0\.0\.1"):
        policy(tmp_path).check("http://2130706433:8001/")


def test_the_default_allows_the_demo_video_and_private_networks_only():
    settings = CaptureSettings()
    default = settings.source_policy()
    default.check(str(settings.data_dir / "video" / "talking_blinks_720p.mp4"))
    default.check("rtsp://user:pass@10.0.0.5/stream")
    for refused in ("0", "http://127.0.0.1:8000/", "/etc/passwd"):
        with pytest.raises(SourceNotAllowed):
            default.check(refused)


def test_a_malformed_host_entry_is_refused_at_start():
    with pytest.raises(ValueError, match="neither a network"):
        CaptureSettings(camera_source_hosts=["10.0.0.0/8", "not a host!"])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s"),
        ("rtsp://admin@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
        (
            "http://10.0.0.5/cgi?user=admin&pwd=hunter2&ch=1",
            "http://10.0.0.5/cgi?user=***&pwd=***&ch=1",
        ),
        (
            "could not open video source: rtsp://a:b@cam/x; retrying rtsp://c:d@cam2/y",
            "could not open video source: rtsp://***@cam/x; retrying rtsp://***@cam2/y",
        ),
        ("/data/video/door.mp4", "/data/video/door.mp4"),
        ("rtsp://10.0.0.5/stream?channel=1", "rtsp://10.0.0.5/stream?channel=1"),
        ("0", "0"),
    ],
)
def test_credentials_are_redacted(text, shown):
    assert redact(text) == shown
    assert "hunter2" not in redact(text)
