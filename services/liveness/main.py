"""Liveness service: blink evidence per tracked face, a verdict per track; and a synchronous
endpoint that judges a burst of frames (login kiosks)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from services.liveness.blink import BlinkDetector
from services.liveness.burst import burst_liveness
from services.liveness.stream import LivenessTracker
from watchpost.consumers import stream_worker
from watchpost.contracts import LivenessReport
from watchpost.images import ImageError, decode_upload
from watchpost.keys import Group
from watchpost.service import BackgroundLoop, Resources, ServiceGate, UploadRoute, service_app
from watchpost.settings import LivenessSettings
from watchpost.vision.models import LOCK as MODEL_LOCK
from watchpost.vision.models import under_lock


def create_app(settings: LivenessSettings | None = None) -> FastAPI:
    settings = settings or LivenessSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        tracker = LivenessTracker(settings, redis_client=resources.redis)
        tracker.reader.warm_up()  # before the service reports ready
        tracker.model_lock = MODEL_LOCK
        app.state.reader = tracker.reader

        worker = stream_worker(
            settings,
            resources.redis,
            settings.keys.frames,  # the shards this replica owns
            group=Group.LIVENESS,
            handle=under_lock(tracker.handle),
            housekeeping=tracker.expire,
            state=tracker,
        )
        return [BackgroundLoop("liveness", worker.run)]

    # Only recognition calls (a kiosk's burst, forwarded), with its service token; a burst's
    # large body is read only once the token checked out.
    recognition = ServiceGate(settings, "recognition")
    app = service_app(
        settings,
        needs_db=False,
        build_loops=build,
        uploads=[UploadRoute("POST", re.compile(r"/v1/liveness"), recognition.admit)],
        title="Watchpost liveness",
    )

    @app.post(
        "/v1/liveness",
        response_model=LivenessReport,
        tags=["liveness"],
        dependencies=[recognition.dependency()],
        responses={422: {"description": "an unusable image, or too many"}},
    )
    async def judge_burst(
        file: Annotated[
            list[UploadFile], File(description="Frames in capture order (JPEG/PNG/WebP)")
        ],
        fps: Annotated[
            float, Form(gt=0, le=120, description="Frames per second of the burst")
        ] = 10.0,
    ) -> LivenessReport:
        """Live, spoof or undecided for one person in a short burst of frames, with evidence."""
        if len(file) > settings.liveness_max_frames:
            raise HTTPException(422, detail=f"at most {settings.liveness_max_frames} frames")
        frames = []
        for index, upload in enumerate(file):
            data = await upload.read(settings.liveness_max_upload_bytes + 1)
            try:
                frames.append(decode_upload(data, max_bytes=settings.liveness_max_upload_bytes))
            except ImageError as exc:
                raise HTTPException(
                    422, detail=f"frame {index} ({upload.filename}): {exc}"
                ) from None

        def judge() -> LivenessReport:
            with MODEL_LOCK:
                return burst_liveness(
                    frames,
                    fps=fps,
                    reader=app.state.reader,
                    detector=BlinkDetector(
                        closed_ratio=settings.liveness_closed_ratio,
                        closed_ear_max=settings.liveness_closed_ear_max,
                        max_blink_seconds=settings.liveness_max_blink_seconds,
                    ),
                )

        return await run_in_threadpool(judge)

    return app
