"""Geometry: crop to a box, to detected boxes, or to an aspect ratio."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from banana.experts.checks import declared
from banana.tools.spec import tool
from banana.tools.values import Boxes, Image

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
