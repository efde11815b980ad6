"""Background edits: a feathered, halo-free blur, and a new background behind a kept foreground."""

from __future__ import annotations

from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.colors import parse_color
from banana.experts.imaging import composite, diagonal, fit_mask, float_of, gaussian, kept_part, luminance, to_float, to_image
from banana.experts.objects import generative_backbone
from banana.tools.backbone import fingerprint
from banana.tools.files import FilePath, ReadPolicy
from banana.tools.memo import derived
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image, Mask


def masked_blur(rgb: np.ndarray, weight: np.ndarray, sigma: float, weighted: np.ndarray | None = None,
                used: np.ndarray | None = None) -> np.ndarray:
    """Normalised convolution: blur using only pixels inside ``weight``, so the subject never bleeds out.
    ``weighted``: ``rgb * weight`` when the caller has it. ``used``: where the caller will use the result; elsewhere
    it is some finite value (a composite that multiplies it by 0 there), which spares a full-picture select."""
    w = weight[:, :, None]
    num = gaussian(rgb * w if weighted is None else weighted, sigma)
    den = gaussian(weight, sigma)[:, :, None]
    if used is None:
        return np.where(den > 1e-3, num / np.maximum(den, 1e-3), gaussian(rgb, sigma))
    out = num / np.maximum(den, 1e-3)
    plain = (den[..., 0] <= 1e-3) & used  # no weighted pixel nearby: the plain blur, as np.where above gives
    if plain.any():
        out[plain] = gaussian(rgb, sigma)[plain]
    return out


@tool(role="background", **declared("blur"), notes=(
    'the background behind a person is invert(segment "person"); behind anything else, or with no subject named, '
    'it is segment "background"',
    'amount follows the strength words (slightly 0.2, none 0.5, a lot 0.7, extremely 1.0) and is always written',
    'blur is never the answer to "remove the blur", noise, haze or text: those are sharpen, denoise, dehaze, segment "text"',
))
def blur(
    image: Image,
    mask: Mask | None = None,
    *,
    amount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5,
) -> Image:
    """Blur the picture, or only where the mask is set (e.g. the background), with soft edges."""
    rgb = float_of(image)
    alpha = fit_mask(mask, image)
    sigma = max(0.5, amount * diagonal(image) / 60.0)
    if mask is None:
        return to_image(gaussian(rgb, sigma))
    weight, weighted = derived("blur weight", (image, mask), lambda: _weights(rgb, alpha))  # the same for any amount
    blurred = masked_blur(rgb, weight, sigma, weighted, used=alpha > 0)
    return to_image(composite(blurred, rgb, alpha, kept_part(image, mask, rgb, alpha)))


def _weights(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weight = (alpha > 0.5).astype(np.float32)
    return weight, rgb * weight[:, :, None]


def gradient(height: int, width: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """A vertical gradient from ``top`` to ``bottom`` (RGB floats)."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1.0 - t) + bottom * t, (height, width, 3)).astype(np.float32)


def cover(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale a picture to cover height x width (no bars, no distortion) and crop the middle."""
    h, w = pixels.shape[:2]
    scale = max(height / h, width / w)
    sh, sw = max(height, round(h * scale)), max(width, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    big = cv2.resize(pixels, (sw, sh), interpolation=interp)
    y0, x0 = (sh - height) // 2, (sw - width) // 2
    return big[y0 : y0 + height, x0 : x0 + width]


def load_backdrop(file: str, image: Image, files: ReadPolicy) -> np.ndarray:
    """The picture a program named, read only if the caller granted it (see banana.tools.files)."""
    try:
        backdrop = Image.decode(files.read(file), file)
    except ValueError as exc:  # ReadRefused, PictureError
        raise ValueError(f"replace_background: {exc}") from None
    return to_float(Image(cover(backdrop.pixels, image.height, image.width)))


def feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the edge inwards only: the old background never shows as a halo, the solid inside stays exact."""
    return np.minimum(alpha, cv2.GaussianBlur(alpha, (0, 0), sigma))


def faded_background(rgb: np.ndarray, background: np.ndarray, sigma: float) -> np.ndarray:
    """The classical stand-in for a generated background: the old one, blurred and mostly desaturated."""
    soft = masked_blur(rgb, background, sigma)
    grey = luminance(soft)[..., None]
    return grey + (soft - grey) * 0.3


@tool(role="background", resources=Resources(memory_mb=50), one_of=[["color", "prompt", "file"]], salt=fingerprint,
      **declared("replace_background"), notes=(
    "mask is the foreground to keep: segment person for people, the noun for an object, person when no subject is named",
    "a scene part changing (the sky, the grass) is replace on segment(part), never replace_background keeping that part",
))
def replace_background(
    image: Image,
    mask: Mask,
    ctx: ToolContext,
    *,
    color: Annotated[str, Field(min_length=1, max_length=40)] | None = None,
    color2: Annotated[str, Field(min_length=1, max_length=40)] | None = None,
    prompt: Annotated[str, Field(min_length=1, max_length=200)] | None = None,
    file: FilePath | None = None,
) -> Image:
    """Put a new background behind the masked foreground: a colour, a gradient (color to color2), a picture file, or a prompt."""
    given = [name for name, v in (("color", color), ("prompt", prompt), ("file", file)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"replace_background needs exactly one of color, prompt or file; got {given or 'none'}")
    if color2 is not None and color is None:
        raise ValueError("replace_background: color2 is the gradient's second colour; give color as well")
    rgb = to_float(image)
    alpha = fit_mask(mask, image)
    meta: dict[str, Any] = {}
    if color is not None:
        top = parse_color(color)
        bottom = parse_color(color2) if color2 is not None else top
        backdrop = gradient(image.height, image.width, top, bottom)
        meta["background"] = "gradient" if color2 is not None else "color"
    elif file is not None:
        backdrop = load_backdrop(file, image, ctx.files)
        meta["background"] = "file"
    else:
        backbone, why_not = generative_backbone()
        meta.update(background="prompt", prompt=prompt)
        if backbone is not None:
            painted = backbone.inpaint(image, Mask(1.0 - alpha), prompt=prompt or "")
            backdrop = to_float(painted)
            meta["backbone"] = painted.meta.get("backbone", backbone.name)
        else:
            backdrop = faded_background(rgb, (alpha < 0.5).astype(np.float32), diagonal(image) / 80.0)
            meta.update(fallback=True, note=f"{why_not}: the old background was blurred and faded, not replaced with {prompt!r}")
    soft = feather(alpha, max(0.8, 0.0015 * diagonal(image)))
    return to_image(composite(rgb, backdrop, soft), meta=meta)
