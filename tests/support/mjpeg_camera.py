"""A network camera stand-in: serves a video file as an MJPEG stream over HTTP on 127.0.0.1
(multipart/x-mixed-replace, as many IP cameras do), and can drop its clients on demand."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

BOUNDARY = "wpframe"


class MjpegCamera:
    def __init__(
        self,
        video: Path,
        *,
        fps: float = 30.0,
        max_frames: int | None = None,
        port: int = 0,
        repeat: bool = False,
    ) -> None:
        self.frames = self._load(video, max_frames)
        self.fps = fps
        self.served = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    frames = camera.frames
                    while True:
                        for jpeg in frames:
                            if camera.closed:  # the camera goes away mid-stream
                                return
                            self.wfile.write(
                                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            )
                            self.wfile.write(jpeg + b"\r\n")
                            camera.served += 1
                            time.sleep(1 / camera.fps)
                        if not camera.repeat:
                            break
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args) -> None:
                pass

        self.repeat = repeat
        self.closed = False
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _load(video: Path, max_frames: int | None) -> list[bytes]:
        capture = cv2.VideoCapture(str(video))
        frames: list[bytes] = []
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            bgr = cv2.resize(bgr, (640, round(bgr.shape[0] * 640 / bgr.shape[1])))
            frames.append(cv2.imencode(".jpg", bgr)[1].tobytes())
        capture.release()
        return frames

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def __enter__(self) -> MjpegCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
