"""The main subject of a picture without people: fine-grained saliency with a centre prior, cut out by GrabCut.

A classical guess (no offline package ships a salient-object model): good on a
product or flower shot against a plain backdrop, weak on busy scenes.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 256  # GrabCut is slow (about 0.4 s here at this size); the mask is refined at full size afterwards


def subject_region(rgb: np.ndarray) -> np.ndarray | None:
    """A boolean H x W subject mask at the picture's size, or None when nothing stands out."""
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    ok, saliency = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(bgr)
    if not ok:
        return None
    sal = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), max(sh, sw) / 50)
    yy, xx = np.mgrid[0:sh, 0:sw]
    sal *= np.exp(-(((xx - sw / 2) / (0.5 * sw)) ** 2 + ((yy - sh / 2) / (0.5 * sh)) ** 2))
    if sal.max() - sal.min() < 1e-6:
        return None
    seeds = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    seeds[sal > np.percentile(sal, 70)] = cv2.GC_PR_FGD
    seeds[sal > np.percentile(sal, 95)] = cv2.GC_FGD
    border = max(2, min(sh, sw) // 40)
    seeds[:border], seeds[-border:], seeds[:, :border], seeds[:, -border:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, seeds, None, np.zeros((1, 65)), np.zeros((1, 65)), 2, cv2.GC_INIT_WITH_MASK)
    region = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    if region.mean() < 0.01:
        return None
    return cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
