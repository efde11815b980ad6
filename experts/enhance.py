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
from banana.experts.manager import choose, context, implements
from banana.tools.spec import tool
from banana.tools.values import Image, Mask

Amount = Annotated[float, Field(gt=0.0, le=1.0)]


def noise_sigma(pixels: np.ndarray) -> float:
    """Immerkaer's estimate of Gaussian noise (0..255 units), the median over the colour channels."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(pixels.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.median(np.sqrt(np.pi / 2.0) * np.abs(response).reshape(-1, 3).mean(axis=0) / 6.0))


def noise_context(image: Image, **_: object) -> tuple[dict[str, float], str]:
    """Size and measured noise (on a central crop of at most 512 px: cheap on huge pictures, same scale): what tells the filters apart."""
    h, w = image.pixels.shape[:2]
    y, x = max(0, (h - 512) // 2), max(0, (w - 512) // 2)
    sigma = noise_sigma(image.pixels[y : y + 512, x : x + 512])
    bucket = "noise sigma < 4" if sigma < 4 else ("noise sigma 4-12" if sigma < 12 else "noise sigma >= 12")
    return {"width": float(image.width), "height": float(image.height), "noise_sigma": round(sigma, 2)}, bucket


context("sharpen")(noise_context)
context("denoise")(noise_context)


@implements("sharpen", "unsharp", cost=lambda **_: 1.0)
def sharpen_unsharp(rgb: np.ndarray, image: Image, amount: float) -> np.ndarray:
    """Unsharp mask at two scales: fast, and it sharpens the noise too."""
    sigma = max(1.0, diagonal(image) / 700.0)
    fine = rgb - cv2.GaussianBlur(rgb, (0, 0), sigma)
    coarse = rgb - cv2.GaussianBlur(rgb, (0, 0), 3.0 * sigma)
    return rgb + 2.0 * amount * fine + 0.6 * amount * coarse


@implements("sharpen", "edge-aware", cost=lambda **_: 2.0)
def sharpen_edge_aware(rgb: np.ndarray, image: Image, amount: float) -> np.ndarray:
    """Boost the detail above a bilateral base: edges sharpen, flat noisy areas much less (slower)."""
    sigma = max(1.0, diagonal(image) / 700.0)
    base = cv2.bilateralFilter(rgb, max(5, round(4 * sigma) | 1), 0.08, 3.0 * sigma)
    flat = cv2.GaussianBlur(rgb, (0, 0), 3.0 * sigma)
    return rgb + 2.5 * amount * (rgb - base) + 0.6 * amount * (base - flat)


@implements("denoise", "non-local-means", cost=lambda **_: 1.0)
def denoise_nlm(image: Image, h: float) -> np.ndarray:
    """OpenCV non-local means: the better result on real noise, many times the cost of a bilateral filter."""
    return cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image.pixels[:, :, ::-1]), None, h, h, 7, 21)[:, :, ::-1]


@implements("denoise", "bilateral", cost=lambda **_: 2.0)
def denoise_bilateral(image: Image, h: float) -> np.ndarray:
    """Two bilateral passes: fast; fine on light grain and JPEG blocks, blotchy on heavy noise."""
    out = np.ascontiguousarray(image.pixels)
    for _ in range(2):
        out = cv2.bilateralFilter(out, 7, 2.0 * h, 3.0)
    return out


@tool(role="restore", **declared("sharpen"), notes=(
    'deblur, "remove the blur", out of focus, soft, fuzzy, "make it clearer": a degradation, not an object; amount '
    'only with a strength word',
))
def sharpen(image: Image, mask: Mask | None = None, *, amount: Amount = 0.5) -> Image:
    """Sharpen or deblur (unsharp mask at two scales, or an edge-aware boost, as routed), everywhere or inside a mask."""
    rgb = to_float(image)
    impl, decision = choose("sharpen", image=image)
    edited = impl.run(rgb, image, amount)
    return to_image(composite(np.clip(edited, 0.0, 1.0), rgb, fit_mask(mask, image)), meta={"route": decision.as_meta()})


@tool(role="restore", **declared("denoise"), notes=(
    'noise, grain, speckles, JPEG or compression artefacts',
))
def denoise(image: Image, mask: Mask | None = None, *, amount: Amount = 0.5) -> Image:
    """Remove noise, grain and JPEG artefacts (non-local means or bilateral, as routed; strength from the measured noise)."""
    sigma = max(2.0, noise_sigma(image.pixels))  # a floor so that JPEG blocking (little Gaussian noise) is still smoothed
    h = float(sigma * (0.3 + 0.8 * amount))
    impl, decision = choose("denoise", image=image)
    cleaned = impl.run(image, h)
    rgb = to_float(image)
    meta = {"noise_sigma": round(sigma, 2), "route": decision.as_meta()}
    return to_image(composite(cleaned.astype(np.float32) / 255.0, rgb, fit_mask(mask, image)), meta=meta)


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
