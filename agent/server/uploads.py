"""Uploaded pictures are untrusted: limits on bytes, pixels and count, decoded by the one safe loader."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image as PILImage

from banana.agent.server.jobs import ApiError
from banana.tools.pictures import PictureError, check_size
from banana.tools.values import Image

_SAFE = re.compile(r"[^\w.-]+")


def safe_name(filename: str | None, fallback: str) -> str:
    """The upload's base name, reduced to letters, digits, '.', '-', '_' (what error messages and programs may use)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE.sub("_", base).strip("._")[:100]
    return base or fallback


def check_bytes(name: str, data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise ApiError(413, f"{name}: the file is {len(data) / 2**20:.1f} MB; at most {limit / 2**20:g} MB per file")
    if not data:
        raise ApiError(400, f"{name}: the file is empty")


def _header_size(name: str, data: bytes, max_pixels: int, max_side: int) -> None:
    """Refuse an over-limit picture with 413 from its header, before any pixel is decoded."""
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            size = im.size
    except Exception:
        return  # not readable as a picture: the loader below says so (400)
    try:
        check_size(name, size[0], size[1], max_pixels, max_side)
    except PictureError as exc:
        raise ApiError(413, str(exc).split("; raise it with")[0] + " (this server's upload limit)") from None


def decode_picture(name: str, data: bytes, max_bytes: int, max_pixels: int, max_side: int) -> Image:
    """Bytes -> Image through the safe loader: 413 over a limit, 400 for anything unreadable."""
    check_bytes(name, data, max_bytes)
    _header_size(name, data, max_pixels, max_side)
    try:
        return Image.decode(data, name, max_pixels=max_pixels, max_side=max_side)
    except PictureError as exc:
        raise ApiError(400, str(exc)) from None


def decode_mask(name: str, data: bytes, size: tuple[int, int], max_bytes: int, max_pixels: int, max_side: int) -> np.ndarray:
    """An OpenAI-style mask: a picture whose fully transparent pixels (alpha 0) mark where to edit -> H x W bool."""
    check_bytes(name, data, max_bytes)
    _header_size(name, data, max_pixels, max_side)
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.load()
            if "A" not in im.getbands() and not (im.mode == "P" and "transparency" in im.info):
                raise ApiError(400, f"{name}: the mask has no transparency; its fully transparent pixels (alpha 0) mark where to edit")
            alpha = np.asarray(im.convert("RGBA"))[..., 3]
    except ApiError:
        raise
    except Exception:
        raise ApiError(400, f"{name}: not a picture file PIL can read (send a PNG with transparency)") from None
    if (alpha.shape[1], alpha.shape[0]) != size:
        raise ApiError(400, f"{name}: the mask is {alpha.shape[1]}x{alpha.shape[0]}, the image {size[0]}x{size[1]}; they must match")
    return alpha == 0


def parse_size(size: str | None) -> tuple[int, int] | None:
    """OpenAI's ``size``: 'auto' or None keeps the picture's size; 'WxH' resizes the answer to it."""
    if size is None or size == "auto":
        return None
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size)
    if not m or not (16 <= int(m.group(1)) <= 4096 and 16 <= int(m.group(2)) <= 4096):
        raise ApiError(400, f"size: {size[:40]!r} is not 'auto' or WIDTHxHEIGHT with each side 16 to 4096 (e.g. 1024x1024)")
    return int(m.group(1)), int(m.group(2))
