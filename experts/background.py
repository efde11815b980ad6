"""Background edits: a feathered, halo-free blur."""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from experts.imaging import composite, diagonal, fit_mask, to_float, to_image
from tools.spec import tool
from tools.values import Image, Mask


def masked_blur(rgb: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: blur using only pixels inside ``weight``, so the subject never bleeds out."""
    w = weight[:, :, None]
    num = cv2.GaussianBlur(rgb * w, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)[:, :, None]
    plain = cv2.GaussianBlur(rgb, (0, 0), sigma)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), plain)


@tool(role="background")
def blur(
    image: Image,
    mask: Mask | None = None,
    *,
    amount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5,
) -> Image:
    """Blur the picture, or only where the mask is set (e.g. the background), with soft edges."""
    rgb = to_float(image)
    alpha = fit_mask(mask, image)
    sigma = max(0.5, amount * diagonal(image) / 60.0)
    if mask is None:
        return to_image(cv2.GaussianBlur(rgb, (0, 0), sigma))
    blurred = masked_blur(rgb, (alpha > 0.5).astype(np.float32), sigma)
    return to_image(composite(blurred, rgb, alpha))
