"""Geometry: crop, rotate, flip, straighten a tilted horizon, add a border."""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.colors import parse_color
from banana.tools.spec import tool
from banana.tools.values import Boxes, Image

ColorName = Annotated[str, Field(min_length=1, max_length=40)]
Aspect = Literal["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "4:5", "5:4", "21:9"]


def _clamp_box(x0: float, y0: float, x1: float, y1: float, image: Image) -> tuple[int, int, int, int]:
    x0, x1 = sorted((max(0, min(round(x0), image.width)), max(0, min(round(x1), image.width))))
    y0, y1 = sorted((max(0, min(round(y0), image.height)), max(0, min(round(y1), image.height))))
    return x0, y0, x1, y1


def aspect_box(image: Image, aspect: str) -> tuple[int, int, int, int]:
    """The largest centred box of the given aspect ratio."""
    aw, ah = (int(v) for v in aspect.split(":"))
    w, h = image.width, image.height
    if w * ah > h * aw:
        cw, ch = round(h * aw / ah), h
    else:
        cw, ch = w, round(w * ah / aw)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return x0, y0, x0 + cw, y0 + ch


@tool(role="geometry", one_of=[["boxes", "box", "aspect"]], **declared("crop"))
def crop(
    image: Image,
    boxes: Boxes | None = None,
    *,
    box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = None,
    aspect: Aspect | None = None,
    margin: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0,
) -> Image:
    """Crop to a pixel box [x0, y0, x1, y1], to the first of some boxes, or to an aspect ratio."""
    given = [name for name, v in (("boxes", boxes), ("box", box), ("aspect", aspect)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"crop needs exactly one of boxes, box or aspect; got {given or 'none'}")
    if aspect is not None:
        x0, y0, x1, y1 = aspect_box(image, aspect)
    else:
        if boxes is not None:
            if len(boxes) == 0:
                raise ValueError("crop got an empty list of boxes: nothing was detected to crop to")
            bx0, by0, bx1, by1 = boxes.boxes[0]
        else:
            bx0, by0, bx1, by1 = box  # type: ignore[misc]
        mx, my = (bx1 - bx0) * margin, (by1 - by0) * margin
        x0, y0, x1, y1 = _clamp_box(bx0 - mx, by0 - my, bx1 + mx, by1 + my, image)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValueError(f"crop box [{x0}, {y0}, {x1}, {y1}] is empty inside a {image.width}x{image.height} picture")
    return Image(image.pixels[y0:y1, x0:x1])


Degrees = Annotated[float, Field(ge=-360.0, le=360.0)]


def rotate_pixels(pixels: np.ndarray, degrees: float, expand: bool, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Turn counter-clockwise by ``degrees``; quarter turns are exact (no resampling), other angles bicubic."""
    quarter = degrees / 90.0
    if quarter == round(quarter):
        turned = np.rot90(pixels, k=round(quarter) % 4)
        if expand or turned.shape == pixels.shape:
            return np.ascontiguousarray(turned)
    h, w = pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    out_w, out_h = w, h
    if expand:
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        out_w, out_h = max(1, round(h * sin + w * cos)), max(1, round(h * cos + w * sin))
        m[0, 2] += (out_w - w) / 2.0
        m[1, 2] += (out_h - h) / 2.0
    return cv2.warpAffine(pixels, m, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


@tool(role="geometry", **declared("rotate"), notes=(
    'degrees is counter-clockwise: "rotate right / clockwise 90" is -90, "upside down" is 180; mirroring is flip',
))
def rotate(image: Image, *, degrees: Degrees, expand: bool = True) -> Image:
    """Rotate counter-clockwise by degrees (negative turns clockwise); expand keeps the corners, filling with black."""
    return Image(rotate_pixels(image.pixels, degrees, expand))


@tool(role="geometry", **declared("flip"), notes=("mirror, flip left to right is horizontal; flip upside down is vertical",))
def flip(image: Image, *, direction: Literal["horizontal", "vertical"] = "horizontal") -> Image:
    """Mirror the picture left-right (horizontal) or upside down (vertical)."""
    return Image(np.ascontiguousarray(image.pixels[:, ::-1] if direction == "horizontal" else image.pixels[::-1]))


MAX_TILT = 15.0  # degrees: steeper lines are part of the scene (roofs, petals), not a tilted horizon


def _weighted_median(values: list[float], weights: list[float]) -> float:
    order = np.argsort(values)
    cum = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(values)[order][np.searchsorted(cum, cum[-1] / 2.0)])


def horizon_tilt(pixels: np.ndarray) -> float | None:
    """The tilt of the long near-horizontal lines (Hough), in degrees counter-clockwise; None when there are none.

    Each line votes with its length, so one long horizon outweighs short edges. With no horizontal
    line, near-vertical ones (walls, masts) vote instead: they lean less reliably (perspective).
    """
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    scale = 512.0 / max(grey.shape)
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (0, 0), 1.0), 50, 150)
    min_len = max(20, round(0.15 * grey.shape[1]))
    lines = cv2.HoughLinesP(edges, 1, np.pi / 720, threshold=max(20, min_len // 2), minLineLength=min_len, maxLineGap=max(3, min_len // 10))
    votes: dict[str, tuple[list[float], list[float]]] = {"horizontal": ([], []), "vertical": ([], [])}
    for x0, y0, x1, y1 in (lines if lines is not None else np.empty((0, 4))).reshape(-1, 4).astype(float):
        angle = float(np.degrees(np.arctan2(-(y1 - y0), x1 - x0)))  # y grows downwards; counter-clockwise is positive
        angle = (angle + 90.0) % 180.0 - 90.0
        kind, tilt = ("horizontal", angle) if abs(angle) <= 45.0 else ("vertical", angle - 90.0 if angle > 0 else angle + 90.0)
        if abs(tilt) <= MAX_TILT:
            votes[kind][0].append(tilt)
            votes[kind][1].append(float(np.hypot(x1 - x0, y1 - y0)))
    for angles, weights in votes.values():
        if angles:
            return _weighted_median(angles, weights)
    return None


def inner_box(width: int, height: int, degrees: float) -> tuple[int, int]:
    """The largest centred box of the picture's aspect that stays inside it after turning by ``degrees``."""
    t = np.radians(abs(degrees))
    scale = min(1.0, 1.0 / (np.cos(t) + np.sin(t) * max(width / height, height / width)))
    return max(1, int(width * scale)), max(1, int(height * scale))


@tool(role="geometry", **declared("straighten"))
def straighten(image: Image) -> Image:
    """Level a tilted horizon: turn by the tilt of the long near-horizontal lines and crop off the empty corners."""
    tilt = horizon_tilt(image.pixels)
    if tilt is None:
        raise ValueError("straighten found no long, near-horizontal line (a horizon, a table edge, a roof) to level the picture by")
    if abs(tilt) < 0.1:
        return Image(image.pixels, meta={"tilt_degrees": round(tilt, 2)})
    turned = rotate_pixels(image.pixels, -tilt, expand=False)
    cw, ch = inner_box(image.width, image.height, tilt)
    x0, y0 = (image.width - cw) // 2, (image.height - ch) // 2
    return Image(np.ascontiguousarray(turned[y0 : y0 + ch, x0 : x0 + cw]), meta={"tilt_degrees": round(tilt, 2)})


@tool(role="geometry", **declared("border"))
def border(image: Image, *, pixels: Annotated[int, Field(ge=1, le=1000)] = 20, color: ColorName = "white") -> Image:
    """Frame the picture with a solid border of the given width in pixels and colour, on every side."""
    rgb = np.round(parse_color(color) * 255.0).astype(np.uint8)
    h, w = image.height, image.width
    out = np.empty((h + 2 * pixels, w + 2 * pixels, 3), np.uint8)
    out[:] = rgb
    out[pixels : pixels + h, pixels : pixels + w] = image.pixels
    return Image(out)
