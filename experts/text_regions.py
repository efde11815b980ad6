"""The ``text`` segment target: captions, watermarks, signs, found by PP-OCR's text detector.

The detector and recogniser (PP-OCRv4 det + rec, ONNX) ship inside the rapidocr-onnxruntime
1.4.4 wheel, which is installed without its opencv-python dependency (this project uses the
headless contrib build; the import name is the same). The detector alone fires on stripes and
foliage (a cat's fur, a sweater's pattern); a region counts as text only when the recogniser
also reads it with confidence. Its boxes carry a margin around the glyphs (DB "unclip"),
which is what a removal needs.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from banana.experts.manager import implements, manager, model
from banana.experts.targets import Target

MIN_READ = 0.5  # the recogniser's confidence below which a detected region is not text


class TextDetector:
    """PP-OCR behind a lock: it keeps per-call preprocessing state on the object."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def boxes(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Regions read as text, as (4, 2) float32 pixel quadrilaterals."""
        with self._lock:  # it expects OpenCV's BGR order
            found, _ = self._engine(np.ascontiguousarray(rgb[:, :, ::-1]), use_cls=False, text_score=MIN_READ)
        return [np.asarray(quad, np.float32) for quad, text, _ in found or [] if text.strip()]


@model("rapidocr", memory_mb=40)
def text_detector(device: str) -> TextDetector:
    from rapidocr_onnxruntime import RapidOCR

    return TextDetector(RapidOCR(intra_op_num_threads=manager().config.threads, inter_op_num_threads=1, print_verbose=False))


def text_mask(rgb: np.ndarray) -> np.ndarray | None:
    """A mask over every text region found, or None when there is no text."""
    quads = text_detector().boxes(rgb)
    if not quads:
        return None
    region = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(region, [np.round(q).astype(np.int32) for q in quads], 1)
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.0)
    return np.maximum(soft, region.astype(np.float32))


@implements("segment", "ppocr-text-detector", applies=lambda target, **_: target.kind == "text", cost=lambda **_: 300.0)
def segment_text(rgb: np.ndarray, target: Target) -> np.ndarray:
    mask = text_mask(rgb)
    if mask is None:
        raise ValueError(f"cannot find {target.phrase!r} in this picture (the text detector found no text)")
    return mask
