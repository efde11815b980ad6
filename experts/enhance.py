"""Classical restoration: sharpen, denoise, dehaze, and an automatic enhance (exposure, white balance, local contrast).

Each is a known, fast CPU method with an ``amount`` in (0, 1]; none needs model weights.
"""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.imaging import composite, diagonal, fit_mask, luminance, to_float, to_image
from banana.tools.spec import tool
from banana.tools.values import Image, Mask

Amount = Annotated[float, Field(gt=0.0, le=1.0)]


def noise_sigma(pixels: np.ndarray) -> float:
    """Immerkaer's estimate of Gaussian noise (0..255 units), the median over the colour channels."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(pixels.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.median(np.sqrt(np.pi / 2.0) * np.abs(response).reshape(-1, 3).mean(axis=0) / 6.0))


@tool(role="restore", **declared("sharpen"), notes=(
    'deblur, "remove the blur", out of focus, soft, fuzzy, "make it clearer": a degradation, not an object; amount '
    'only with a strength word',
))
def sharpen(image: Image, mask: Mask | None = None, *, amount: Amount = 0.5) -> Image:
    """Sharpen or deblur (unsharp mask at two scales), everywhere or inside a mask."""
    rgb = to_float(image)
    sigma = max(1.0, diagonal(image) / 700.0)
    fine = rgb - cv2.GaussianBlur(rgb, (0, 0), sigma)
    coarse = rgb - cv2.GaussianBlur(rgb, (0, 0), 3.0 * sigma)
    edited = rgb + 2.0 * amount * fine + 0.6 * amount * coarse
    return to_image(composite(np.clip(edited, 0.0, 1.0), rgb, fit_mask(mask, image)))


@tool(role="restore", **declared("denoise"), notes=(
    'noise, grain, speckles, JPEG or compression artefacts',
))
def denoise(image: Image, mask: Mask | None = None, *, amount: Amount = 0.5) -> Image:
    """Remove noise, grain and JPEG artefacts (OpenCV non-local means, strength from the measured noise), everywhere or in a mask."""
    sigma = max(2.0, noise_sigma(image.pixels))  # a floor so that JPEG blocking (little Gaussian noise) is still smoothed
    h = float(sigma * (0.3 + 0.8 * amount))
    cleaned = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image.pixels[:, :, ::-1]), None, h, h, 7, 21)[:, :, ::-1]
    rgb = to_float(image)
    return to_image(composite(cleaned.astype(np.float32) / 255.0, rgb, fit_mask(mask, image)), meta={"noise_sigma": round(sigma, 2)})


def dark_channel(rgb: np.ndarray, patch: int) -> np.ndarray:
    return cv2.erode(rgb.min(axis=2), cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch)))


def airlight(rgb: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """The haze colour: the brightest pixels among the 0.1% haziest (highest dark channel)."""
    n = max(1, dark.size // 1000)
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    candidates = rgb.reshape(-1, 3)[idx]
    return np.maximum(candidates[np.argsort(luminance(candidates))[-max(1, n // 10) :]].mean(axis=0), 0.05)


@tool(role="restore", **declared("dehaze"), notes=(
    'haze, fog, mist, smog: "remove the fog" is dehaze, "add fog" is edit',
))
def dehaze(image: Image, *, amount: Amount = 0.5) -> Image:
    """Remove haze or fog (He et al.'s dark channel prior, transmission refined with a guided filter)."""
    rgb = to_float(image)
    patch = max(3, round(diagonal(image) / 50) | 1)
    air = airlight(rgb, dark_channel(rgb, patch))
    omega = 0.95 * (0.5 + 0.5 * amount)  # the share of the haze taken away
    transmission = 1.0 - omega * dark_channel(rgb / air, patch)
    radius = max(8, round(diagonal(image) / 40))
    transmission = cv2.ximgproc.guidedFilter(guide=image.pixels, src=transmission.astype(np.float32), radius=radius, eps=1e-3 * 255.0**2)
    t = np.maximum(transmission, 0.15)[:, :, None]
    return to_image((rgb - air) / t + air, meta={"airlight": [round(float(v), 3) for v in air]})


def white_balance_gains(rgb: np.ndarray) -> np.ndarray:
    """Gray world, ignoring clipped pixels, with the gains bounded so one dominant colour cannot wreck the picture."""
    usable = (rgb.max(axis=2) < 0.98) & (rgb.min(axis=2) > 0.02)
    pixels = rgb[usable] if usable.sum() > 100 else rgb.reshape(-1, 3)
    means = np.maximum(pixels.mean(axis=0), 1e-3)
    return np.clip(means.mean() / means, 0.6, 1.6).astype(np.float32)


def local_contrast(rgb: np.ndarray, clip: float) -> np.ndarray:
    """CLAHE on Lab lightness: detail in shadows and highlights without shifting colours."""
    lab = cv2.cvtColor((np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint8), cv2.COLOR_RGB2LAB)
    tiles = (8, 8)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=tiles).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


@tool(role="restore", **declared("enhance"), notes=(
    '"auto enhance", "fix the lighting / exposure / white balance / colours", underexposed or low-light photos',
))
def enhance(image: Image, mask: Mask | None = None, *, amount: Amount = 0.5) -> Image:
    """Automatic fix-up: white balance (gray world), exposure (gamma toward mid-grey, lifts low light), local contrast (CLAHE)."""
    rgb = to_float(image)
    gains = 1.0 + amount * (white_balance_gains(rgb) - 1.0)
    out = np.clip(rgb * gains, 0.0, 1.0)
    mean = float(np.clip(luminance(out).mean(), 0.02, 0.98))
    gamma = float(np.clip(np.log(0.46) / np.log(mean), 0.35, 1.6)) ** amount
    out = out**gamma
    out = out + (local_contrast(out, 1.0 + 2.0 * amount) - out) * amount
    meta = {"gains": [round(float(g), 3) for g in gains], "gamma": round(gamma, 3)}
    return to_image(composite(out, rgb, fit_mask(mask, image)), meta=meta)
