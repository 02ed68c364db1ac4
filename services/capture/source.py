"""Video sources through OpenCV: a file, a webcam index, or an RTSP/HTTP(S) URL. Messages name a
source with its credentials redacted, as they end up in logs and in the camera's last error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from watchpost.sources import SourceNotAllowed, SourcePolicy, redact


class SourceError(RuntimeError):
    """A source that cannot be opened or read, with the reason."""


@dataclass
class VideoSource:
    description: str
    capture: cv2.VideoCapture
    is_file: bool
    fps: float

    def grab(self) -> bool:
        return self.capture.grab()

    def retrieve(self):
        ok, frame = self.capture.retrieve()
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


def open_source(source: str, policy: SourcePolicy | None = None) -> VideoSource:
    """Open the source; with a policy, only when the policy allows it."""
    shown = redact(source)
    if policy is not None:
        try:
            policy.check(source)
        except SourceNotAllowed as exc:
            raise SourceError(f"source not allowed: {exc}") from None
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        is_file = False
    elif "://" in source:
        if not source.lower().startswith(("rtsp://", "rtsps://", "http://", "https://", "file://")):
            raise SourceError(f"unsupported stream URL scheme: {shown}")
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        is_file = source.lower().startswith("file://")
    else:
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"video file not found: {shown}")
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        is_file = True
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"could not open video source: {shown}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not fps or fps != fps or fps > 240:  # NaN or nonsense from some streams
        fps = 25.0
    return VideoSource(shown, capture, is_file, fps)
