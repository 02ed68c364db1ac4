"""Recognition service: identifies tracked faces from the stream, and serves a synchronous API
(detect + embed an uploaded image, identify it) that the dashboard uses for enrolment."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.recognition.stream import FrameRecognizer, GalleryHolder
from watchpost.consumers import stream_worker
from watchpost.images import ImageError, decode_upload
from watchpost.keys import RECOGNITION_GROUP, Keys
from watchpost.messages import Box, Frame
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import RecognitionSettings
from watchpost.vision.faces import detect_faces, embed_face

# dlib's models are not documented as thread-safe; the stream loop and HTTP handlers share them.
_MODEL_LOCK = threading.Lock()


class FaceOut(BaseModel):
    box: Box
    embedding: list[float]
    identity_id: int | None = None
    display_name: str | None = None
    distance: float | None = None


class FacesOut(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


def create_app(settings: RecognitionSettings | None = None) -> FastAPI:
    settings = settings or RecognitionSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        holder = GalleryHolder(resources.pool, resources.redis, Keys(settings.stream_prefix))
        holder.refresh(force=True)
        app.state.gallery = holder
        recognizer = FrameRecognizer(settings, redis_client=resources.redis, gallery=holder)

        def handle(delivery) -> None:
            with _MODEL_LOCK:
                recognizer.handle(delivery)

        worker = stream_worker(
            settings,
            resources.redis,
            stream=Keys(settings.stream_prefix).frames,
            group=RECOGNITION_GROUP,
            expected=Frame,
            handle=handle,
            housekeeping=lambda: holder.refresh(),
        )
        return [BackgroundLoop("recognition", worker.run)]

    app = service_app(settings, needs_db=True, build_loops=build, title="Watchpost recognition")

    async def read_image(file: UploadFile):
        data = await file.read(settings.recognition_max_upload_bytes + 1)
        try:
            return decode_upload(data, max_bytes=settings.recognition_max_upload_bytes)
        except ImageError as exc:
            raise HTTPException(422, detail=f"{file.filename or 'image'}: {exc}") from None

    def faces_in(rgb, *, identify: bool) -> FacesOut:
        with _MODEL_LOCK:
            boxes = detect_faces(rgb, upsample=1)
            faces = []
            for box in boxes:
                embedding = embed_face(rgb, box)
                face = FaceOut(
                    box=Box(left=box[0], top=box[1], right=box[2], bottom=box[3]),
                    embedding=[float(x) for x in embedding],
                )
                if identify:
                    match = app.state.gallery.refresh().identify(
                        embedding, threshold=settings.recognition_threshold
                    )
                    face = face.model_copy(
                        update={
                            "identity_id": match.identity_id,
                            "display_name": match.display_name,
                            "distance": match.distance,
                        }
                    )
                faces.append(face)
        return FacesOut(width=rgb.shape[1], height=rgb.shape[0], faces=faces)

    @app.post("/v1/faces", response_model=FacesOut, tags=["recognition"])
    async def detect_and_embed(file: Annotated[UploadFile, File()]) -> FacesOut:
        """Every face in the image, largest first, with its 128-d embedding."""
        rgb = await read_image(file)
        return await run_in_threadpool(faces_in, rgb, identify=False)

    @app.post("/v1/identify", response_model=FacesOut, tags=["recognition"])
    async def identify(file: Annotated[UploadFile, File()]) -> FacesOut:
        """Every face in the image with the best enrolled identity within the threshold."""
        rgb = await read_image(file)
        return await run_in_threadpool(faces_in, rgb, identify=True)

    return app
