"""Mask algebra: invert, combine, grow."""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.tools.spec import tool
from banana.tools.values import Mask


def _same_size(a: Mask, b: Mask) -> np.ndarray:
    if a.shape == b.shape:
        return b.alpha
    return cv2.resize(b.alpha, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)


@tool(role="mask", **declared("invert"))
def invert(mask: Mask) -> Mask:
    """Select everything the mask does not (e.g. the background of a person mask)."""
    return Mask(1.0 - mask.alpha)


@tool(role="mask", **declared("combine"))
def combine(a: Mask, b: Mask, *, op: Literal["union", "intersect", "subtract"] = "union") -> Mask:
    """Combine two masks: union (either), intersect (both) or subtract (a but not b)."""
    bb = _same_size(a, b)
    if op == "union":
        return Mask(np.maximum(a.alpha, bb))
    if op == "intersect":
        return Mask(np.minimum(a.alpha, bb))
    return Mask(np.minimum(a.alpha, 1.0 - bb))


@tool(role="mask", **declared("grow"))
def grow(mask: Mask, *, pixels: Annotated[int, Field(ge=-200, le=200)] = 8) -> Mask:
    """Grow the mask outwards by some pixels (negative shrinks it)."""
    if pixels == 0:
        return mask
    r = abs(pixels)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = cv2.dilate if pixels > 0 else cv2.erode
    return Mask(op(np.ascontiguousarray(mask.alpha), kernel))
