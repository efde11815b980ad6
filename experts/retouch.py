"""Skin retouching by frequency separation, only on skin: everything outside the mask keeps its exact pixels."""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from banana.experts.background import masked_blur
from banana.experts.checks import declared
from banana.experts.imaging import composite, fit_mask, to_float, to_image
from banana.experts.perception import segment_alpha
from banana.tools.spec import Resources, tool
from banana.tools.values import Image, Mask


def smooth_skin(rgb: np.ndarray, skin: np.ndarray, amount: float) -> np.ndarray:
    """Frequency separation: the low layer is smoothed inside the skin only (eyes, lips and hair never bleed in),
    blemishes and wrinkles (the middle band) are taken away, and a little of the finest texture (pores) comes back
    so the skin does not look like plastic."""
    inside = (skin > 0.5).astype(np.float32)
    size = float(np.sqrt(max(inside.sum(), 1.0)))  # the skin's scale in pixels: a face of ~100 px gives sigma ~ 2.5
    sigma = max(1.5, size / 40.0) * (0.5 + amount)
    low = masked_blur(rgb, inside, sigma)
    low = cv2.bilateralFilter(low, d=0, sigmaColor=0.08, sigmaSpace=sigma)  # keeps the face's shape (nose, jaw) crisp
    pores = rgb - cv2.GaussianBlur(rgb, (0, 0), 0.7)
    smoothed = low + (0.5 - 0.3 * amount) * pores
    strength = 0.35 + 0.65 * amount
    return rgb + (smoothed - rgb) * strength


@tool(role="style", resources=Resources(memory_mb=200), **declared("retouch"), notes=(
    'blemishes, pimples, acne, wrinkles, "smooth my skin", airbrushing: retouch without a mask (it finds the skin)',
))
def retouch(image: Image, mask: Mask | None = None, *, amount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5) -> Image:
    """Smooth skin and soften blemishes and wrinkles, only on skin: inside the mask, or on segment's skin when none is given."""
    rgb = to_float(image)
    alpha = segment_alpha(image, "skin") if mask is None else fit_mask(mask, image)
    if not (alpha > 0.5).any():
        raise ValueError("retouch: the mask selects no skin (nothing above 0.5); pass segment(target='skin') or a face mask")
    return to_image(composite(smooth_skin(rgb, alpha, amount), rgb, alpha))
