"""Load each dlib model once per process, from the `face-recognition-models` package (no
download at run time)."""

from __future__ import annotations

import threading
from functools import cache

import dlib
import face_recognition_models as weights

# dlib's models are not documented as thread-safe; a service's stream loop and its HTTP handlers
# share them under this lock.
LOCK = threading.Lock()


@cache
def face_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@cache
def landmarks_68() -> dlib.shape_predictor:
    return dlib.shape_predictor(weights.pose_predictor_model_location())


@cache
def landmarks_5() -> dlib.shape_predictor:
    return dlib.shape_predictor(weights.pose_predictor_five_point_model_location())


@cache
def face_encoder() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(weights.face_recognition_model_location())
