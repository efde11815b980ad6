"""128-d face embeddings from dlib's ResNet (the model face_recognition uses), loaded through the expert manager.

The model files come from the ``face_recognition_models`` wheel; they are located
without importing it, because its ``__init__`` needs ``pkg_resources``. Distances are
Euclidean: below 0.6 is the same person by dlib's own calibration.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from banana.experts.manager import model

SAME_PERSON = 0.6


def model_file(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed (pip install face_recognition_models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise RuntimeError(f"face_recognition_models has no {name} at {path}")
    return str(path)


class Embedder:
    """Shape predictor + ResNet behind one lock (dlib models keep scratch buffers: not thread-safe)."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(model_file("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))
        self._lock = threading.Lock()

    def embed(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The embedding of the face in a pixel box (x0, y0, x1, y1), aligned on 5 landmarks."""
        img = np.ascontiguousarray(rgb, np.uint8)
        rect = self._dlib.rectangle(*(int(v) for v in box))
        with self._lock:
            shape = self._landmarks(img, rect)
            return np.asarray(self._net.compute_face_descriptor(img, shape), np.float64)


@model("dlib.face_embedding", memory_mb=120)
def embedder(device: str) -> Embedder:
    return Embedder()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
