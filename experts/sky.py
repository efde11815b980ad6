"""Sky without a sky model: smooth blue or bright grey regions connected to the top edge.

No offline package ships a sky segmenter, so this is a colour + position + texture
rule. It refuses (returns None) rather than guess: a studio backdrop is blue or grey
and touches the top too, but it is mottled where a sky is smooth, and a sky is
brighter than what lies below it.
"""

from __future__ import annotations

import cv2
import numpy as np

from banana.experts.matting import touching

WORK_SIDE = 512  # texture thresholds are per pixel, so measure them at one scale
MAX_TEXTURE = 0.04  # a pixel smoother than this can be sky
MAX_MEDIAN_TEXTURE = 0.015  # a sky region is this smooth on the whole (backdrops measured 0.024-0.037)
MIN_AREA = 0.04
MIN_TOP_COVER = 0.25


def texture(rgb: np.ndarray) -> np.ndarray:
    """Local mean gradient magnitude of the luminance, in [0, ~1]."""
    lum = cv2.GaussianBlur(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0, (0, 0), 1.0)
    grad = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3))
    return cv2.blur(grad, (9, 9))


def sky_region(rgb: np.ndarray) -> np.ndarray | None:
    """A boolean H x W sky mask at the picture's size, or None when the picture shows no sky."""
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    tex = texture(small)
    blue = (hue >= 180) & (hue <= 255) & (sat > 0.12) & (val > 0.2)
    overcast = (sat < 0.18) & (val > 0.6)
    candidate = cv2.morphologyEx(((blue | overcast) & (tex < MAX_TEXTURE)).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    top = np.zeros(candidate.shape, bool)
    top[: max(2, small.shape[0] // 50)] = True
    sky = touching(candidate.astype(bool), top)
    if (
        sky.mean() < MIN_AREA
        or sky[0].mean() < MIN_TOP_COVER
        or np.median(tex[sky]) > MAX_MEDIAN_TEXTURE
        or val[sky].mean() <= val[~sky].mean()
    ):
        return None
    return cv2.resize(sky.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
