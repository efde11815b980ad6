"""Classical hole filling: the no-weights stand-in for diffusion inpainting.

It continues the surrounding structure and colour; it cannot draw what a prompt
asks for. Thin holes (scratches, outlines) take Telea's fast marching; wider ones
take OpenCV's frequency-selective reconstruction (``xphoto`` FSR), run on a crop
around the hole at a bounded size, then a seam blend removes any step at the rim.
"""

from __future__ import annotations

import cv2
import numpy as np

from banana.backbone.harmonize import seam_blend

THIN_HOLE_PX = 3.0  # holes no more than this far from their rim are filled by Telea
MAX_CROP_SIDE = 256  # FSR's cost grows with the hole; larger crops are filled at this size and scaled up


def fill_holes(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) with the pixels where ``hole`` is True reconstructed from their surroundings."""
    if not hole.any():
        return rgb
    depth = float(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5).max())
    if depth <= THIN_HOLE_PX:
        return cv2.inpaint(rgb, hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    y0, y1, x0, x1 = _crop_around(hole, margin=max(16, int(2 * depth)))
    crop, crop_hole = rgb[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    scale = min(1.0, MAX_CROP_SIDE / max(crop.shape[:2]))
    small = (max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale)))
    crop_s = cv2.resize(crop, small, interpolation=cv2.INTER_AREA)
    hole_s = cv2.resize(crop_hole.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST)
    hole_s = cv2.dilate(hole_s, np.ones((3, 3), np.uint8)) if scale < 1 else hole_s  # no hole pixel may leak in as "known"
    filled_s = np.zeros_like(crop_s)
    cv2.xphoto.inpaint(crop_s, (1 - hole_s) * 255, filled_s, cv2.xphoto.INPAINT_FSR_FAST)
    filled = cv2.resize(filled_s, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_CUBIC)
    out = rgb.copy()
    region = out[y0:y1, x0:x1]
    region[crop_hole] = filled[crop_hole]
    return seam_blend(out, (~hole).astype(np.float32), strength=0.5)


def _crop_around(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return max(0, ys.min() - margin), min(h, ys.max() + 1 + margin), max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
