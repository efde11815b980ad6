"""Eyes, lips, teeth and eyebrows: ``segment`` targets cut from mediapipe's face-mesh landmarks.

Landmark polygons are exact enough for eyes, lips and brows; teeth are the bright,
colourless pixels inside the inner lip line (a closed mouth shows none, and says so).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from banana.experts.colour_model import to_lab
from banana.experts.faces import LEFT_BROW, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE
from banana.experts.manager import implements
from banana.experts.people import Head, heads
from banana.experts.targets import Target

# The inner lip line (mediapipe FACEMESH_LIPS, inner ring) as an ordered polygon.
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
MIN_TEETH = 0.002  # visible teeth smaller than this fraction of the face box are noise


def _eyes(head: Head, rgb: np.ndarray) -> np.ndarray:
    shape = rgb.shape[:2]
    return head.polygon(LEFT_EYE, shape) | head.polygon(RIGHT_EYE, shape)


def _eyebrows(head: Head, rgb: np.ndarray) -> np.ndarray:
    """The brow polygons, grown a little: the mesh runs along the middle of thick brows."""
    shape = rgb.shape[:2]
    brows = head.polygon(LEFT_BROW, shape) | head.polygon(RIGHT_BROW, shape)
    grow = max(1, round(head.width * 0.012))
    return cv2.dilate(brows.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)


def _lips(head: Head, rgb: np.ndarray) -> np.ndarray:
    shape = rgb.shape[:2]
    return head.polygon(LIPS_OUTER, shape) & ~head.polygon(LIPS_INNER, shape)


def _teeth(head: Head, rgb: np.ndarray) -> np.ndarray:
    """Inside the inner lip line: at least as light as the lips and clearly less coloured."""
    shape = rgb.shape[:2]
    inner, lips = head.polygon(LIPS_INNER, shape), _lips(head, rgb)
    if not inner.any() or not lips.any():
        return np.zeros(shape, bool)
    lab = to_lab(rgb)
    lightness, chroma = lab[..., 0], np.hypot(lab[..., 1], lab[..., 2])
    teeth = inner & (lightness >= max(55.0, float(np.median(lightness[lips])))) & (chroma <= 0.9 * float(np.median(chroma[lips])))
    teeth = cv2.morphologyEx(teeth.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool) & inner  # no specks
    return teeth if teeth.sum() >= MIN_TEETH * head.width * head.height else np.zeros(shape, bool)


PARTS: dict[str, tuple[Callable[[Head, np.ndarray], np.ndarray], str]] = {
    "eyes": (_eyes, "no face found"),
    "eyebrows": (_eyebrows, "no face found"),
    "lips": (_lips, "no face found"),
    "teeth": (_teeth, "no face found, or no teeth showing (a closed mouth)"),
}


def part_mask(rgb: np.ndarray, part: str) -> np.ndarray | None:
    """A soft mask of one face part on every face, or None when no face shows it."""
    make, _ = PARTS[part]
    found = heads(rgb)
    region = np.zeros(rgb.shape[:2], bool)
    for head in found:
        region |= make(head, rgb)
    if not region.any():
        return None
    # Parts are a few pixels across: a light feather, not the guided filter the big masks use.
    sigma = max(0.6, 0.004 * min(h.width for h in found))
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma)
    return np.maximum(soft, region.astype(np.float32))  # the part itself fully selected, a soft rim around it


@implements("segment", "face-mesh-parts", applies=lambda target, **_: target.kind in PARTS, cost=lambda **_: 30.0)
def segment_part(rgb: np.ndarray, target: Target) -> np.ndarray:
    mask = part_mask(rgb, target.kind)
    if mask is None:
        raise ValueError(f"cannot find {target.phrase!r} in this picture ({PARTS[target.kind][1]})")
    return mask
