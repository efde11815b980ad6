"""Small pixel helpers shared by the experts (float conversion, mask fitting, compositing)."""

from __future__ import annotations

import cv2
import numpy as np

from banana.tools.values import Image, Mask


def to_float(image: Image) -> np.ndarray:
    """H x W x 3 float32 in [0, 1]."""
    return image.pixels.astype(np.float32) / 255.0


def to_image(arr: np.ndarray, meta: dict | None = None) -> Image:
    return Image(np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8), meta=meta or {})


def fit_mask(mask: Mask | None, image: Image) -> np.ndarray:
    """The mask's alpha at the image's size (all ones when there is no mask)."""
    if mask is None:
        return np.ones((image.height, image.width), np.float32)
    a = mask.alpha
    if a.shape != (image.height, image.width):
        a = cv2.resize(a, (image.width, image.height), interpolation=cv2.INTER_LINEAR)
    return a


def composite(edited: np.ndarray, original: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Edited where alpha is 1, original where it is 0; exact outside the mask."""
    a = alpha[:, :, None]
    out = edited * a + original * (1.0 - a)
    out[alpha <= 0] = original[alpha <= 0]
    return out


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def diagonal(image: Image) -> float:
    return float(np.hypot(image.height, image.width))
