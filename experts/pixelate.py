"""Mosaic: square blocks of one colour (the block's mean), on the whole picture or on the blocks a mask touches."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.imaging import fit_mask
from banana.tools.spec import tool
from banana.tools.values import Image, Mask


def block_means(pixels: np.ndarray, block: int) -> np.ndarray:
    """Each block (a grid from the top-left corner; partial blocks at the edges) filled with its mean colour."""
    h, w = pixels.shape[:2]
    ph, pw = -h % block, -w % block
    padded = np.pad(pixels.astype(np.float32), ((0, ph), (0, pw), (0, 0)), mode="constant")
    weight = np.pad(np.ones((h, w), np.float32), ((0, ph), (0, pw)), mode="constant")
    gh, gw = padded.shape[0] // block, padded.shape[1] // block
    sums = padded.reshape(gh, block, gw, block, 3).sum(axis=(1, 3))
    counts = weight.reshape(gh, block, gw, block).sum(axis=(1, 3))[:, :, None]
    means = np.round(sums / counts).astype(np.uint8)
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:h, :w]


def touched_blocks(selected: np.ndarray, block: int) -> np.ndarray:
    """Every pixel of each block that holds at least one selected pixel: a mosaic has no half blocks."""
    h, w = selected.shape
    padded = np.pad(selected, ((0, -h % block), (0, -w % block)))
    grid = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).any(axis=(1, 3))
    return np.repeat(np.repeat(grid, block, axis=0), block, axis=1)[:h, :w]


@tool(role="style", **declared("pixelate"), notes=(
    "pixelate / mosaic X: segment X then pixelate; faces: detect_faces, mask_from_boxes, pixelate",
))
def pixelate(image: Image, mask: Mask | None = None, *, block: Annotated[int, Field(ge=2, le=256)] = 16) -> Image:
    """Pixelate (mosaic) the picture, or every block the mask touches (e.g. faces or a licence plate), in blocks of block px."""
    mosaic = block_means(image.pixels, block)
    if mask is None:
        return Image(mosaic)
    touched = touched_blocks(fit_mask(mask, image) >= 0.5, block)
    if not touched.any():
        raise ValueError("pixelate: the mask selects nothing (no pixel at or above 0.5)")
    out = image.pixels.copy()
    out[touched] = mosaic[touched]
    return Image(out)
