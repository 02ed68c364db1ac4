"""From pixels to evidence for one frame: eye readings (EAR and the eye-state CNN, batched over
every face of the frame) and passive attack scores. Used by the stream and the burst endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.liveness.blink import eyes_measurable, face_ear
from services.liveness.eyes import (
    EYE_FRAMING,
    EYE_PATCH,
    LANDMARK_FACE_PX,
    EyeStateClassifier,
    eye_patches,
    face_landmarks,
)
from services.liveness.passive_model import PassiveModel
from services.liveness.verdict import LivenessPolicy
from watchpost.geometry import BoxTuple as Box
from watchpost.settings import LivenessSettings


@dataclass(frozen=True)
class EyeReading:
    ear: float | None
    problem: str | None
    p_closed: float | None
    landmarks: np.ndarray | None = None  # (68, 2) in the frame's pixels (the parallax cue)


class EvidenceReader:
    def __init__(self, settings: LivenessSettings, *, passive_model: Path | None = None) -> None:
        """`passive_model`: other passive weights than the shipped ones (benchmarks)."""
        self.eyes = EyeStateClassifier() if settings.liveness_eye_cnn else None
        self.passive = PassiveModel.load(passive_model) if settings.liveness_passive else None
        threshold = settings.liveness_spoof_threshold or (
            self.passive.threshold if self.passive else 0.5
        )
        decides = settings.liveness_passive_decides
        if decides is None:  # the model file says whether its measured figures allow it
            decides = bool(self.passive and self.passive.decides)
        self.min_eye_px = settings.liveness_min_eye_px
        self.eye_framing = EYE_FRAMING  # benchmarks compare other framings and no upscaling
        self.landmark_face_px = LANDMARK_FACE_PX
        self.policy = LivenessPolicy(
            window_seconds=settings.liveness_window_seconds,
            min_frames=settings.liveness_min_frames,
            spoof_threshold=threshold,
            passive_decides=decides,
            motion_threshold=settings.liveness_motion_threshold,
            motion_min_pairs=settings.liveness_motion_min_pairs,
            motion_min_seconds=settings.liveness_motion_min_seconds,
            min_live_seconds=settings.liveness_min_live_seconds,
            parallax=settings.liveness_parallax,
            parallax_threshold=settings.liveness_parallax_threshold,
            parallax_min_pairs=settings.liveness_parallax_min_pairs,
            parallax_min_seconds=settings.liveness_parallax_min_seconds,
            head_motion=settings.liveness_head_motion,
            head_motion_max_flatness=settings.liveness_head_motion_max_flatness,
            head_motion_max_follow=settings.liveness_head_motion_max_follow,
        )

    def warm_up(self) -> None:
        """Load every model and compile the CNNs' predictors (one call each) before the first
        frame: on a cold start that is about two seconds every queued frame would wait."""
        from watchpost.vision.models import warm_up

        warm_up(landmarks=True)
        if self.eyes is not None:
            self.eyes.scores(np.zeros((2, EYE_PATCH, EYE_PATCH), np.uint8))
        if self.passive is not None:
            self.passive.scores([np.full((64, 64, 3), 128, np.uint8)])

    def read_eyes(self, grey: np.ndarray, boxes: list[Box]) -> list[EyeReading]:
        """One reading per face; the CNN runs once for all readable eyes of the frame. Small
        faces are landmarked on an upscaled copy; eyes narrower than `liveness_min_eye_px` are
        not read (the reading says why), nor is a face cut off by the frame's edge: its
        landmarks would be guessed (no landmarks either, so the parallax cue skips it too), and
        such a detection is as often no face at all."""
        readings: list[tuple[float | None, str | None, np.ndarray | None]] = []
        patches = []
        height, width = grey.shape[:2]
        for box in boxes:
            if box[0] <= 0 or box[1] <= 0 or box[2] >= width or box[3] >= height:
                readings.append((None, "face cut off by the edge of the frame", None))
                continue
            landmarks = face_landmarks(grey, box, upscale_below=self.landmark_face_px)
            problem = eyes_measurable(landmarks, box[2] - box[0], min_eye_px=self.min_eye_px)
            ear = None if problem else face_ear(landmarks)
            readings.append((ear, problem, landmarks))
            if not problem and self.eyes is not None:
                patches.append(eye_patches(grey, landmarks, framing=self.eye_framing))
        p_closed: Iterator[float] = iter([])
        if patches and self.eyes is not None:
            p_closed = iter(self.eyes.scores(np.concatenate(patches)).reshape(-1, 2).mean(axis=1))
        return [
            EyeReading(
                ear,
                problem,
                float(next(p_closed)) if ear is not None and patches else None,
                landmarks,
            )
            for ear, problem, landmarks in readings
        ]

    def passive_scores(self, crops: list[np.ndarray]) -> list[float]:
        """P(attack) per face crop (a `watchpost.images.face_square` cut at camera resolution);
        empty when the passive check is off."""
        if self.passive is None or not crops:
            return []
        return [float(s) for s in self.passive.scores(crops)]
