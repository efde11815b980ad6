"""Global and local tone: brightness, contrast, saturation, warmth, hue, shadows, highlights."""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.imaging import composite, diagonal, fit_mask, float_of, gaussian, kept_part, luminance, to_image
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


def shift_hue(rgb: np.ndarray, hue: float) -> np.ndarray:
    """Turn every colour around the HSV hue circle by ``hue`` x 180 degrees (1 and -1 both give the complementary colours)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + 180.0 * hue) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _lift(rgb: np.ndarray, amount: float, weight: np.ndarray) -> np.ndarray:
    w = (0.5 * amount * weight)[..., None]
    return rgb + (1.0 - rgb) * w if amount > 0 else rgb * (1.0 + w)


def shadows_highlights(rgb: np.ndarray, shadows: float, highlights: float, sigma: float) -> np.ndarray:
    """Brighten (> 0) or deepen (< 0) the dark and the bright tones apart; the weights follow a blurred
    lightness, so the tones of regions move while the detail inside them stays."""
    base = gaussian(luminance(rgb), sigma)
    out = rgb
    if shadows:
        out = _lift(out, shadows, np.clip((0.6 - base) / 0.6, 0.0, 1.0) ** 2)  # no weight above 60 % lightness
    if highlights:
        out = _lift(out, highlights, np.clip((base - 0.4) / 0.6, 0.0, 1.0) ** 2)  # none below 40 %
    return np.clip(out, 0.0, 1.0)


@tool(role="style", **declared("adjust"), notes=(
    'strength words: slightly / a bit / a little 0.2; none 0.4; much / very / a lot 0.7; extremely / as much as possible 1.0',
    'darker, dimmer, cooler, flatter, duller, less vivid are negative; "more" gives only the direction; black and white is saturation -1',
    'lift / brighten the shadows is shadows +; recover / tone down the highlights is highlights -',
))
def adjust(
    image: Image,
    mask: Mask | None = None,
    *,
    brightness: Amount = 0.0,
    contrast: Amount = 0.0,
    saturation: Amount = 0.0,
    warmth: Amount = 0.0,
    hue: Amount = 0.0,
    shadows: Amount = 0.0,
    highlights: Amount = 0.0,
) -> Image:
    """Change brightness, contrast, saturation (-1 = grayscale), warmth, hue (shift), shadows or highlights, everywhere or in a mask."""
    rgb = float_of(image)
    edited = apply_tone(rgb, brightness, contrast, saturation, warmth)
    if hue:
        edited = np.clip(shift_hue(edited, hue), 0.0, 1.0)
    if shadows or highlights:
        edited = shadows_highlights(edited, shadows, highlights, max(1.0, diagonal(image) / 100.0))
    alpha = fit_mask(mask, image)
    return to_image(composite(edited, rgb, alpha, kept_part(image, mask, rgb, alpha)))
