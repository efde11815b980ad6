"""Faces and people from the models inside the mediapipe 0.10.21 wheel: detection, face mesh, person alpha, pose.

mediapipe is imported inside the loaders only: importing it costs about a second
(it pulls in matplotlib), and listing the tools should not pay for that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from banana.experts.manager import model

WORK_SIDE = 2048  # mediapipe sees at most this on the long side: its bundled OpenCV aborts the process at 32,767

# Face-mesh landmark indices, as ordered polygons (mediapipe ships them as unordered edge sets).
FACE_OVAL = (10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148,
             152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338)
LEFT_EYE = (249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466, 263)
RIGHT_EYE = (7, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163)
LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)


def bounded(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """A working copy at most ``side`` px on the long side (the picture itself when it is smaller)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class Graph:
    """A mediapipe graph behind a lock: graphs keep state between calls and are not thread-safe.

    It runs on a bounded working copy: mediapipe's answers are in relative coordinates (boxes,
    landmarks), so they map back to the full picture unchanged; masks are scaled back by the caller.
    """

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._lock = threading.Lock()

    def process(self, rgb: np.ndarray) -> Any:
        small = np.ascontiguousarray(bounded(rgb), dtype=np.uint8)
        with self._lock:
            return self._graph.process(small)


@model("mediapipe.face_detection", memory_mb=20)
def face_detector(device: str) -> Graph:
    """BlazeFace, full range: finds small faces as well as close-ups."""
    import mediapipe as mp

    return Graph(mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5))


@model("mediapipe.face_mesh", memory_mb=40)
def face_mesh(device: str) -> Graph:
    """468 landmarks per face, up to 8 faces, every image treated as a still."""
    import mediapipe as mp

    return Graph(mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=8, min_detection_confidence=0.5))


@model("mediapipe.selfie_segmentation", memory_mb=20)
def selfie_segmenter(device: str) -> Graph:
    import mediapipe as mp

    return Graph(mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0))


@model("mediapipe.pose", memory_mb=80)
def pose_detector(device: str) -> Graph:
    """Pose, complexity 1: the only complexity whose model ships in the wheel (0 and 2 try to download)."""
    import mediapipe as mp

    return Graph(mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, min_detection_confidence=0.5))


@dataclass(frozen=True)
class FaceBox:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    score: float

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def find_faces(rgb: np.ndarray, min_score: float = 0.5) -> list[FaceBox]:
    """Faces as pixel boxes clipped to the picture, largest first."""
    h, w = rgb.shape[:2]
    found = []
    for d in face_detector().process(rgb).detections or []:
        b = d.location_data.relative_bounding_box
        x0, y0 = max(0, round(b.xmin * w)), max(0, round(b.ymin * h))
        x1, y1 = min(w, round((b.xmin + b.width) * w)), min(h, round((b.ymin + b.height) * h))
        score = float(d.score[0])
        if x1 > x0 and y1 > y0 and score >= min_score:
            found.append(FaceBox((x0, y0, x1, y1), score))
    return sorted(found, key=lambda f: -f.area)


def face_landmarks(rgb: np.ndarray) -> list[np.ndarray]:
    """One (468, 2) float32 array of pixel coordinates per face the mesh finds."""
    h, w = rgb.shape[:2]
    faces = face_mesh().process(rgb).multi_face_landmarks or []
    return [np.array([(p.x * w, p.y * h) for p in f.landmark], np.float32) for f in faces]


def person_alpha(rgb: np.ndarray) -> np.ndarray:
    """Selfie segmentation: H x W float32 in [0, 1]. It calls almost anything a person (a cat scores 0.9): gate it."""
    alpha = np.asarray(selfie_segmenter().process(rgb).segmentation_mask, np.float32)
    h, w = rgb.shape[:2]
    return alpha if alpha.shape == (h, w) else cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)


def has_pose(rgb: np.ndarray) -> bool:
    """Whether the pose model sees a human body (it does not fire on animals or objects, unlike selfie segmentation)."""
    return pose_detector().process(rgb).pose_landmarks is not None


def landmarks_in(landmarks: list[np.ndarray], box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The mesh whose centre lies inside a detection box (meshes and boxes come from different models)."""
    x0, y0, x1, y1 = box
    for lm in landmarks:
        cx, cy = lm[list(FACE_OVAL)].mean(axis=0)
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return lm
    return None
