"""Global and local tone: brightness, contrast, saturation, warmth."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from banana.experts.imaging import composite, fit_mask, luminance, to_float, to_image
from banana.experts.checks import declared
from banana.tools.spec import tool
from banana.tools.values import Image, Mask

Amount = Annotated[float, Field(ge=-1.0, le=1.0)]


def apply_tone(rgb: np.ndarray, brightness: float, contrast: float, saturation: float, warmth: float) -> np.ndarray:
    """Each amount in [-1, 1], 0 = unchanged; saturation -1 gives exact grey."""
    out = rgb
    if brightness > 0:
        out = out + (1.0 - out) * (0.6 * brightness)
    elif brightness < 0:
        out = out * (1.0 + 0.6 * brightness)
    if contrast:
        mid = luminance(out).mean()
        out = (out - mid) * (1.0 + contrast) + mid if contrast < 0 else (out - mid) * (1.0 + 2.0 * contrast) + mid
    if saturation:
        lum = luminance(out)[..., None]
        factor = 1.0 + saturation if saturation < 0 else 1.0 + 1.5 * saturation
        out = lum + (out - lum) * factor
    if warmth:
        shift = np.array([0.12, 0.03, -0.12], np.float32) * warmth
        out = out + shift
    return np.clip(out, 0.0, 1.0)


@tool(role="style", **declared("adjust"))
def adjust(
    image: Image,
    mask: Mask | None = None,
    *,
    brightness: Amount = 0.0,
    contrast: Amount = 0.0,
    saturation: Amount = 0.0,
    warmth: Amount = 0.0,
) -> Image:
    """Change brightness, contrast, saturation (-1 = grayscale) or warmth, everywhere or inside a mask."""
    rgb = to_float(image)
    edited = apply_tone(rgb, brightness, contrast, saturation, warmth)
    return to_image(composite(edited, rgb, fit_mask(mask, image)))
