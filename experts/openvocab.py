"""Open-vocabulary perception for a GPU box: OWLv2 finds any noun, SAM cuts out what it found.

Routed beside the embedded experts (``@implements``): it serves only ``object``
targets (nouns no embedded model knows, such as "lamp post"), and only when its weights
are configured. Weights come from configuration alone, never a silent download:
``BANANA_DETECTOR_WEIGHTS`` (an ``Owlv2ForObjectDetection`` folder with its processor) and
``BANANA_SAM_WEIGHTS`` (a ``SamModel`` folder with its processor); a hub id is accepted
only written ``hf:org/name``, as for the backbone. ``detect`` needs the detector only.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from banana.experts.manager import implements, manager, model
from banana.experts.matting import refine_edges
from banana.experts.targets import Target

DETECTOR_ENV = "BANANA_DETECTOR_WEIGHTS"
SAM_ENV = "BANANA_SAM_WEIGHTS"
HUB_PREFIX = "hf:"
THRESHOLD = 0.1  # OWLv2's usual score threshold for one text query
NMS_IOU = 0.5  # overlapping boxes of one noun above this IoU are one object
SEGMENT_COST = 800.0  # above every embedded expert: it only wins where none applies


def resolve(var: str) -> tuple[str, bool] | None:
    """(where, is_local) for a weights variable, None when unset; a mistyped folder is an error, never a download."""
    text = os.environ.get(var, "").strip()
    if not text:
        return None
    if text.startswith(HUB_PREFIX):
        return text[len(HUB_PREFIX):], False
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ValueError(f"{var}={text!r}: no such folder (a hub id is written {HUB_PREFIX}org/name)")
    return str(path), True


def configured(need_sam: bool) -> bool:
    """Whether the open-vocabulary expert can serve: the detector (and for masks SAM) named in the environment."""
    return bool(os.environ.get(DETECTOR_ENV, "").strip()) and (not need_sam or bool(os.environ.get(SAM_ENV, "").strip()))


@dataclass
class Loaded:
    source: str
    model: Any
    processor: Any
    device: str
    lock: threading.Lock


def _load(var: str, device: str, kind: str) -> Loaded:
    where = resolve(var)
    if where is None:
        raise ValueError(f"{var} is not set")
    source, local = where
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor, SamModel, SamProcessor

    try:
        if kind == "detector":
            net = AutoModelForZeroShotObjectDetection.from_pretrained(source, local_files_only=local)
            if net.config.model_type != "owlv2":
                raise ValueError(f"expected OWLv2 weights (Owlv2ForObjectDetection), found model type {net.config.model_type!r}")
            processor = AutoProcessor.from_pretrained(source, local_files_only=local)
        else:
            net = SamModel.from_pretrained(source, local_files_only=local)
            processor = SamProcessor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{var}={os.environ[var]!r}: could not load the {kind}: {exc}") from exc
    return Loaded(os.environ[var], net.to(device).eval(), processor, device, threading.Lock())


@model("openvocab.detector", memory_mb=1200, wants_gpu=True)
def detector(device: str) -> Loaded:
    return _load(DETECTOR_ENV, device, "detector")


@model("openvocab.sam", memory_mb=2600, wants_gpu=True)
def segmenter(device: str) -> Loaded:
    return _load(SAM_ENV, device, "SAM")


def _current(get: Any, name: str, var: str) -> Loaded:
    """The loaded model, reloaded when the variable now names other weights."""
    loaded = get()
    if loaded.source != os.environ.get(var):
        manager().unload(name)
        loaded = get()
    return loaded


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter + 1e-9)


def find(rgb: np.ndarray, noun: str) -> list[tuple[tuple[int, int, int, int], float]]:
    """Boxes of ``noun`` as (x0, y0, x1, y1) pixels clipped to the picture, best first, overlaps merged."""
    import torch

    det = _current(detector, "openvocab.detector", DETECTOR_ENV)
    h, w = rgb.shape[:2]
    with det.lock, torch.no_grad():
        query = [[f"a photo of a {noun}"]]
        inputs = det.processor(text=query, images=rgb, truncation=True, return_tensors="pt").to(det.device)
        outputs = det.model(**inputs)
        side = max(h, w)  # OWLv2 pads the picture to a square (bottom and right) before it sees it
        result = det.processor.post_process_grounded_object_detection(outputs, threshold=THRESHOLD, target_sizes=[(side, side)])[0]
    boxes, scores = result["boxes"].float().cpu().numpy(), result["scores"].float().cpu().numpy()
    boxes = np.column_stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)])
    keep = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
    boxes, scores = boxes[keep], scores[keep]
    found: list[tuple[tuple[int, int, int, int], float]] = []
    chosen: list[np.ndarray] = []
    for i in np.argsort(-scores, kind="stable"):
        if chosen and _iou(boxes[i], np.array(chosen)).max() > NMS_IOU:
            continue
        chosen.append(boxes[i])
        x0, y0, x1, y1 = (round(float(v)) for v in boxes[i])
        found.append(((x0, y0, x1, y1), float(scores[i])))
    return found


def masks(rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """SAM's mask for each box, joined: H x W float32 in {0, 1}."""
    import torch

    sam = _current(segmenter, "openvocab.sam", SAM_ENV)
    with sam.lock, torch.no_grad():
        inputs = sam.processor(images=rgb, input_boxes=[[list(map(float, b)) for b in boxes]], return_tensors="pt").to(sam.device)
        outputs = sam.model(**inputs, multimask_output=False)
        found = sam.processor.post_process_masks(outputs.pred_masks.cpu(), inputs["original_sizes"].cpu(),
                                                 inputs["reshaped_input_sizes"].cpu())[0]
    return found.reshape(-1, *rgb.shape[:2]).any(dim=0).numpy().astype(np.float32)


def _instances(rgb: np.ndarray, target: Target) -> list[tuple[tuple[int, int, int, int], float]]:
    found = find(rgb, str(target.noun))
    if not found:
        raise ValueError(f"cannot find {target.phrase!r} in this picture (the open-vocabulary detector found no {target.noun})")
    return found[:1] if target.single and not target.pick else found  # with a pick, the caller chooses among them


def _applies(need_sam: bool) -> Any:
    return lambda target, **_: target.kind == "object" and configured(need_sam)


@implements("segment", "open-vocabulary-sam", applies=_applies(True), cost=lambda **_: SEGMENT_COST)
def segment_object(rgb: np.ndarray, target: Target) -> np.ndarray:
    alpha = masks(rgb, [b for b, _ in _instances(rgb, target)])
    if not alpha.any():
        raise ValueError(f"cannot find {target.phrase!r} in this picture (SAM cut nothing out of the detector's boxes)")
    return refine_edges(rgb, alpha)


@implements("detect", "open-vocabulary-detector", applies=_applies(False), cost=lambda **_: SEGMENT_COST / 2)
def detect_object(rgb: np.ndarray, target: Target) -> list[tuple[tuple[int, int, int, int], float]]:
    return _instances(rgb, target)
