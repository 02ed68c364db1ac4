"""Load each dlib model once per process, from the `face-recognition-models` package (no
download at run time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import dlib
import face_recognition_models as weights
import numpy as np

# dlib's models are not documented as thread-safe; a service's stream loop and its HTTP handlers
# share them under this lock.
LOCK = threading.Lock()
T = TypeVar("T")


def under_lock(handle: Callable[[T], None]) -> Callable[[T], None]:
    """`handle` run while holding LOCK (a stream handler sharing the models with HTTP routes)."""

    def locked(item: T) -> None:
        with LOCK:
            handle(item)

    return locked


@cache
def face_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@cache
def cnn_face_detector() -> dlib.cnn_face_detection_model_v1:
    """dlib's MMOD CNN detector: slower than HOG (about 0.3 s on a 250 px image here), but it
    finds the tight, turned or small faces HOG misses; a fallback, never the first pass."""
    return dlib.cnn_face_detection_model_v1(weights.cnn_face_detector_model_location())


@cache
def landmarks_68() -> dlib.shape_predictor:
    return dlib.shape_predictor(weights.pose_predictor_model_location())


@cache
def landmarks_5() -> dlib.shape_predictor:
    return dlib.shape_predictor(weights.pose_predictor_five_point_model_location())


@cache
def face_encoder() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(weights.face_recognition_model_location())


def warm_up(*, detector: bool = False, landmarks: bool = False, encoder: bool = False) -> None:
    """Load the dlib models a service uses before it says it is ready, so its first frames do
    not wait for a model to load (they would queue behind it, and so would every alert)."""
    blank = np.zeros((120, 120, 3), np.uint8)
    rect = dlib.rectangle(20, 20, 100, 100)
    if detector:
        face_detector()(blank, 0)
    if landmarks:
        landmarks_68()(blank, rect)
    if encoder:
        face_encoder().compute_face_descriptor(blank, landmarks_5()(blank, rect), 0)


@cache
def keras_model(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A committed Keras model, loaded once per process, as a compiled batch predictor
    (TensorFlow is imported only here). Compiling with `tf.function` over a variable batch size
    cuts the per-call overhead from about 9 ms to 2 ms, which matters when it runs per frame."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    model = tf.keras.models.load_model(path, compile=False)
    signature = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    predict = tf.function(lambda batch: model(batch, training=False), input_signature=[signature])
    return lambda batch: predict(np.asarray(batch, dtype=np.float32)).numpy()
