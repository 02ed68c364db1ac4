"""Recognition service: identifies tracked faces from the stream, and serves a synchronous API
(detect + embed an uploaded image, identify it) that the dashboard uses for enrolment."""

from __future__ import annotations

import re
from typing import Annotated

import httpx
import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from services.recognition.burst import BurstFace, splice_problem
from services.recognition.gallery import IndexSettings, identity_distance
from services.recognition.stream import FrameRecognizer, GalleryHolder
from watchpost import calibration
from watchpost.auth import Principal, Role
from watchpost.consumers import stream_worker
from watchpost.contracts import (
    FaceOut,
    FacesOut,
    LivenessReport,
    NearestIn,
    NearestOut,
    Neighbour,
    VerifyOut,
)
from watchpost.db import audit_log, identities
from watchpost.geometry import Box
from watchpost.images import ImageError, decode_upload
from watchpost.keys import Group
from watchpost.service import (
    BackgroundLoop,
    Resources,
    ServiceGate,
    UploadRoute,
    api_key_auth,
    service_app,
    service_headers,
)
from watchpost.settings import RecognitionSettings
from watchpost.vision.faces import detect_faces, embed_face
from watchpost.vision.models import LOCK as MODEL_LOCK
from watchpost.vision.models import under_lock, warm_up


def create_app(settings: RecognitionSettings | None = None) -> FastAPI:
    settings = settings or RecognitionSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        holder = GalleryHolder(
            resources.require_pool(),
            resources.redis,
            settings.keys,
            k=settings.recognition_score_k,
            index=IndexSettings.of(settings),
        )
        # The first load runs in the background (binary, seconds at a million samples); the
        # service is not ready, and the frame handler waits, until it is done.
        resources.checks["gallery"] = lambda: holder.loaded
        app.state.gallery = holder
        gallery_loop = BackgroundLoop(
            "gallery",
            lambda stop: holder.run(
                stop, reconcile_every_s=settings.recognition_gallery_reconcile_seconds
            ),
        )
        warm_up(encoder=True)  # before the service reports ready
        recognizer = FrameRecognizer(settings, redis_client=resources.redis, gallery=holder)

        worker = stream_worker(
            settings,
            resources.redis,
            settings.keys.frames,  # the shards this replica owns
            group=Group.RECOGNITION,
            handle=under_lock(recognizer.handle),
            housekeeping=holder.reload,
            state=recognizer,
        )
        return [gallery_loop, BackgroundLoop("recognition", worker.run)]

    # Who may call: the dashboard (its service token) to embed and identify enrolment photos, and
    # login kiosks (API keys with the kiosk role) to verify; large bodies only once admitted.
    dashboard = ServiceGate(settings, "dashboard")
    kiosk = api_key_auth(Role.kiosk)
    if settings.recognition_liveness_url:
        settings.service_token("recognition")  # refuse to start unable to ask liveness
    uploads = [
        UploadRoute("POST", re.compile(r"/v1/(faces|identify)"), dashboard.admit),
        UploadRoute("POST", re.compile(r"/v1/verify"), kiosk),
    ]
    app = service_app(
        settings,
        needs_db=True,
        build_loops=build,
        uploads=uploads,
        title="Watchpost recognition",
    )
    internal = [dashboard.dependency()]

    async def read_image(file: UploadFile):
        data = await file.read(settings.recognition_max_upload_bytes + 1)
        try:
            return decode_upload(data, max_bytes=settings.recognition_max_upload_bytes)
        except ImageError as exc:
            raise HTTPException(422, detail=f"{file.filename or 'image'}: {exc}") from None

    def faces_in(rgb, *, identify: bool) -> FacesOut:
        with MODEL_LOCK:
            boxes = detect_faces(rgb, upsample=1)
            faces = []
            for box in boxes:
                # /v1/faces embeds enrolment photos: jittered when that pays (docs/recognition.md)
                embedding = embed_face(
                    rgb, box, jitter=0 if identify else settings.recognition_enrol_jitter
                )
                face = FaceOut(
                    box=Box.of(box),
                    embedding=[float(x) for x in embedding],
                )
                if identify:
                    if not app.state.gallery.loaded:
                        raise HTTPException(503, detail="the gallery is still loading; try again")
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

    @app.post("/v1/faces", response_model=FacesOut, tags=["recognition"], dependencies=internal)
    async def detect_and_embed(file: Annotated[UploadFile, File()]) -> FacesOut:
        """Every face in the image, largest first, with its 128-d embedding."""
        rgb = await read_image(file)
        return await run_in_threadpool(faces_in, rgb, identify=False)

    @app.post("/v1/identify", response_model=FacesOut, tags=["recognition"], dependencies=internal)
    async def identify(file: Annotated[UploadFile, File()]) -> FacesOut:
        """Every face in the image with the best enrolled identity within the threshold."""
        rgb = await read_image(file)
        return await run_in_threadpool(faces_in, rgb, identify=True)

    def nearest(body: NearestIn) -> NearestOut:
        holder: GalleryHolder = app.state.gallery
        if not holder.loaded:
            raise HTTPException(503, detail="the gallery is still loading; try again")
        gallery = holder.refresh()  # every committed enrolment and erasure applied
        found = gallery.neighbours(np.asarray(body.embedding, np.float32), body.identity_id)
        other = None
        if found.other_id is not None and found.other_distance is not None:
            other = Neighbour(
                identity_id=found.other_id,
                display_name=found.other_name or "",
                distance=found.other_distance,
            )
        return NearestOut(
            own_samples=found.own_samples,
            own_nearest=found.own_nearest,
            other=other,
            approximate=gallery.approximate,
        )

    @app.post(
        "/v1/gallery/nearest",
        response_model=NearestOut,
        tags=["recognition"],
        dependencies=internal,
        responses={503: {"description": "the gallery is not loaded yet"}},
    )
    async def gallery_nearest(body: NearestIn) -> NearestOut:
        """Where a face about to be enrolled falls in the gallery held in memory: the nearest
        of its person's own samples and the nearest sample of anyone else (the dashboard's
        outlier and duplicate checks)."""
        return await run_in_threadpool(nearest, body)

    def calibrate(target_far: float) -> dict:
        with app.state.resources.pool.connection() as conn:
            snapshot = identities.load_gallery_binary(conn)
        try:
            scores = calibration.gallery_scores(
                snapshot.embeddings,
                snapshot.identity_ids.tolist(),
                k=settings.recognition_score_k,
            )
            return calibration.calibrate(
                scores,
                target_far=target_far,
                current_threshold=settings.recognition_threshold,
                gallery_identities=scores.identities,
            )
        except calibration.CalibrationError as exc:
            raise HTTPException(409, detail=f"cannot calibrate: {exc}") from None

    @app.get(
        "/v1/calibration",
        tags=["recognition"],
        dependencies=internal,
        responses={
            200: {"content": {"application/json": {}, "image/svg+xml": {}}},
            409: {"description": "too few people or photos enrolled to calibrate"},
        },
    )
    async def calibration_curve(
        target_far: Annotated[float | None, Query(gt=0, lt=1)] = None,
        format: Annotated[str, Query(pattern="^(json|svg)$")] = "json",
    ):
        """The false-accept / false-reject curve of the enrolled gallery at its current size,
        and the 1:N threshold suggested for `target_far` per identification (default: the
        setting). `format=svg` answers the plot."""
        result = await run_in_threadpool(
            calibrate, target_far or settings.recognition_calibration_target_far
        )
        if format == "svg":
            return Response(calibration.svg(result), media_type="image/svg+xml")
        return result

    @app.post(
        "/v1/verify",
        response_model=VerifyOut,
        tags=["recognition"],
        responses={
            401: {"description": "no kiosk key"},
            403: {"description": "a key without the kiosk role"},
            404: {"description": "no identity with that login name"},
            409: {"description": "the identity has no enrolled face"},
            422: {
                "description": "an unusable image, no face in any, or a burst that is not one "
                "continuous take of one face (spliced frames)"
            },
        },
    )
    async def verify(
        login_name: Annotated[str, Form(min_length=1, max_length=200)],
        file: Annotated[
            list[UploadFile], File(description="One photo, or a 2-3 s burst of frames")
        ],
        request: Request,
        who: Principal = Depends(kiosk),  # noqa: B008 (a local, which Annotated cannot name)
        fps: Annotated[float, Form(gt=0, le=120)] = 10.0,
    ) -> VerifyOut:
        """1:1: is the person in these frames the one who claims `login_name`? With several
        frames, the liveness service also says whether they show a live person."""
        if len(file) > settings.recognition_max_files:
            raise HTTPException(422, detail=f"at most {settings.recognition_max_files} images")
        uploads = [
            (f.filename or f"frame-{i}", await f.read(settings.recognition_max_upload_bytes + 1))
            for i, f in enumerate(file)
        ]
        frames = []
        for name, data in uploads:
            try:
                frames.append(decode_upload(data, max_bytes=settings.recognition_max_upload_bytes))
            except ImageError as exc:
                raise HTTPException(422, detail=f"{name}: {exc}") from None
        with app.state.resources.pool.connection() as conn:
            identity = identities.find_by_login(conn, login_name)
            if identity is None:
                raise HTTPException(404, detail=f"no identity has the login name {login_name!r}")
            enrolled = identities.identity_embeddings(conn, identity["id"])
        if len(enrolled) == 0:
            raise HTTPException(409, detail=f"{login_name!r} has no enrolled face to compare with")

        def faces() -> list[BurstFace]:
            found = []
            with MODEL_LOCK:
                for index, rgb in enumerate(frames):
                    boxes = detect_faces(rgb, upsample=1)
                    if boxes:
                        found.append(BurstFace(index, boxes[0], embed_face(rgb, boxes[0])))
            return found

        seen = await run_in_threadpool(faces)
        if not seen:
            raise HTTPException(422, detail="no face found in any of the images")
        problem = splice_problem(seen, len(frames))
        if problem:
            raise HTTPException(422, detail=f"not one continuous take of one face: {problem}")
        k = settings.recognition_score_k
        found = [identity_distance(enrolled, f.embedding, k=k) for f in seen]
        liveness, note = await _ask_liveness(uploads, fps)
        distance = float(np.median(found))
        result = VerifyOut(
            login_name=login_name,
            identity_id=identity["id"],
            display_name=identity["display_name"],
            match=distance <= settings.recognition_verify_threshold,
            distance=distance,
            best_distance=min(found),
            threshold=settings.recognition_verify_threshold,
            frames=len(frames),
            frames_with_face=len(found),
            liveness=liveness,
            liveness_note=note,
        )
        await run_in_threadpool(audit_verify, who, request, result)
        return result

    def audit_verify(who: Principal, request: Request, result: VerifyOut) -> None:
        """The audit log names the kiosk that verified whom, and the outcome."""
        with app.state.resources.pool.connection() as conn:
            audit_log.audit(
                conn,
                actor=who.actor,
                role=who.role.name,
                action="verify",
                target_type="identity",
                target_id=result.identity_id,
                details={
                    "match": result.match,
                    "liveness": result.liveness.state if result.liveness else None,
                },
                client=request.client.host if request.client else None,
            )

    async def _ask_liveness(
        uploads: list[tuple[str, bytes]], fps: float
    ) -> tuple[LivenessReport | None, str | None]:
        if len(uploads) < 2:
            return None, "one image: liveness needs a burst of frames"
        if not settings.recognition_liveness_url:
            return None, "no liveness service configured"
        url = f"{settings.recognition_liveness_url.rstrip('/')}/v1/liveness"
        try:
            async with httpx.AsyncClient(timeout=120) as client:
                response = await client.post(
                    url,
                    data={"fps": str(fps)},
                    files=[("file", (n, d)) for n, d in uploads],
                    headers=service_headers(settings),
                )
        except httpx.HTTPError as exc:
            return None, f"liveness service unreachable: {exc}"
        if response.status_code != 200:
            return None, f"liveness service answered {response.status_code}"
        try:
            return LivenessReport.model_validate_json(response.content), None
        except ValidationError as exc:
            return None, f"liveness service sent an unreadable report: {exc.error_count()} errors"

    return app
