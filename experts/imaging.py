"""Small pixel helpers shared by the experts (float conversion, mask fitting, compositing)."""

from __future__ import annotations

import cv2
import numpy as np

from banana.tools.memo import derived
from banana.tools.values import Image, Mask


def to_float(image: Image) -> np.ndarray:
    """H x W x 3 float32 in [0, 1]."""
    rgb = image.pixels.astype(np.float32)
    rgb /= 255.0  # in place: the same values as astype(...) / 255.0
    return rgb


def float_of(image: Image) -> np.ndarray:
    """:func:`to_float`, read-only and remembered by content in the current memo (a chat's next turn edits the same input)."""
    return derived("float", (image,), lambda: to_float(image))


def to_image(arr: np.ndarray, meta: dict | None = None) -> Image:
    scaled = arr * 255.0  # rounded and clipped in place: the same bytes as np.clip(np.round(...)), without two more copies
    np.round(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return Image(scaled.astype(np.uint8), meta=meta or {})


def fit_mask(mask: Mask | None, image: Image) -> np.ndarray:
    """The mask's alpha at the image's size (all ones when there is no mask)."""
    if mask is None:
        return np.ones((image.height, image.width), np.float32)
    a = mask.alpha
    if a.shape != (image.height, image.width):
        a = cv2.resize(a, (image.width, image.height), interpolation=cv2.INTER_LINEAR)
    return a


def composite(edited: np.ndarray, original: np.ndarray, alpha: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
    """Edited where alpha is 1, original where it is 0; exact outside the mask. ``kept``: ``original * (1 - alpha)``
    when the caller has it (:func:`kept_part`)."""
    a = alpha[:, :, None]
    out = edited * a + (original * (1.0 - a) if kept is None else kept)
    if alpha.min() < 0 or not np.isfinite(out).all():  # where alpha is 0 and the edit finite, the sum is already the original
        out[alpha <= 0] = original[alpha <= 0]
    return out


def kept_part(image: Image, mask: Mask | None, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb * (1 - alpha)``: what an edit inside the mask keeps of the picture, remembered by content (a follow-up
    that changes only the edit's strength or colour keeps the same part of the same picture)."""
    values = (image,) if mask is None else (image, mask)
    return derived("kept", values, lambda: rgb * (1.0 - alpha[:, :, None]))


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def diagonal(image: Image) -> float:
    return float(np.hypot(image.height, image.width))


DIRECT_SIGMA = 8.0  # up to here OpenCV's separable kernel is fast; beyond, blur a smaller copy


def gaussian(arr: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur whose cost does not grow with sigma.

    A wide blur (sigma in the hundreds on a large photo: a kernel of thousands of taps, minutes
    of CPU) is done on a copy shrunk by about sigma/3, then enlarged again: area-averaging and
    bilinear enlarging add a variance of ~f^2/4 that the small blur leaves out, so the result
    matches the direct blur to within about 1 % of sigma, and the cost is a few passes over the
    picture whatever sigma is.
    """
    if sigma <= DIRECT_SIGMA:
        return cv2.GaussianBlur(arr, (0, 0), sigma)
    h, w = arr.shape[:2]
    f = sigma / 3.0
    small = (max(1, round(w / f)), max(1, round(h / f)))
    fx, fy = w / small[0], h / small[1]
    shrunk = cv2.resize(arr, small, interpolation=cv2.INTER_AREA)
    rest = np.sqrt(max(sigma**2 - (fx * fx + fy * fy) / 2 * (1 / 12 + 1 / 6), 0.25)) / ((fx + fy) / 2)
    blurred = cv2.GaussianBlur(shrunk, (0, 0), rest, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
