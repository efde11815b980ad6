"""Decoding picture files, which are untrusted input: correct pixels or one clear error, never a crash.

- the size is read from the header and checked *before* any pixel is decoded: at most
  ``BANANA_MAX_PIXELS`` pixels (default 40 MP) and ``BANANA_MAX_SIDE`` per side (default 16384);
- EXIF orientation is applied; transparency is composited onto white (Banana's pictures are RGB);
- 16-bit and other deep modes are scaled to 8 bits (not clipped); CMYK, palette, grey are converted;
- an animated file gives its first frame and a note (in ``meta["load_note"]`` and a logged warning);
- anything PIL cannot read (unknown, truncated, corrupt, a decompression bomb) is a :class:`PictureError`
  naming the file.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

log = logging.getLogger(__name__)
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 16384
WHITE = (255, 255, 255, 255)
MAX_META_CHARS = 100_000
# Our own limit (checked from the header) is the one that speaks; PIL's warning would only repeat it, worse.
warnings.filterwarnings("ignore", category=PILImage.DecompressionBombWarning)


class PictureError(ValueError):
    """A picture file that cannot be used; the message names the file and what to do."""


def _env_limit(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"{var}={raw!r}: give a whole number, e.g. {var}={default}") from None
    if value < 1:
        raise ValueError(f"{var}={raw!r}: must be at least 1")
    return value


def limits(max_pixels: int | None = None, max_side: int | None = None) -> tuple[int, int]:
    """(max pixels, max side): the arguments when given, else ``BANANA_MAX_PIXELS`` / ``BANANA_MAX_SIDE``, else the defaults."""
    return (max_pixels or _env_limit("BANANA_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            max_side or _env_limit("BANANA_MAX_SIDE", DEFAULT_MAX_SIDE))


def check_size(name: str, width: int, height: int, max_pixels: int | None = None, max_side: int | None = None) -> None:
    """Refuse a picture over the limits (from its header, before decoding)."""
    most, side = limits(max_pixels, max_side)
    if width < 1 or height < 1:
        raise PictureError(f"{name}: the picture is {width}x{height} pixels (empty)")
    if max(width, height) > side or width * height > most:
        raise PictureError(_over(name, f"{width}x{height} pixels ({width * height / 1e6:.1f} MP)", most, side))


def _over(name: str, size: str, most: int, side: int) -> str:
    return (f"{name}: {size} is over the limit of {most / 1e6:g} MP and {side} px per side; raise it with "
            "BANANA_MAX_PIXELS / BANANA_MAX_SIDE (in Python: Image.load(path, max_pixels=..., max_side=...))")


def _to_rgb(im: PILImage.Image, name: str) -> PILImage.Image | np.ndarray:
    """8-bit RGB: alpha over white, deep modes scaled, everything else converted by PIL."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)  # also swaps big-endian I;16B
        if mode == "F" and arr.size and np.nanmin(arr) >= 0.0 and np.nanmax(arr) <= 1.0:
            scaled = arr * 255.0
        elif arr.size and np.nanmin(arr) >= 0.0 and np.nanmax(arr) <= 65535.0:
            scaled = arr / 257.0  # 16-bit range onto 8 bits: 65535 -> 255, 32768 -> 127.5
        else:  # a range that is neither: stretch it, it has no fixed white
            lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if arr.size else (0.0, 1.0)
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        grey = np.clip(np.round(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    try:
        return im.convert("RGB")
    except ValueError:
        raise PictureError(f"{name}: colour mode {mode} is not supported; save it as RGB") from None


def _meta(im: PILImage.Image, key: str) -> dict[str, Any]:
    """Banana's own meta from a PNG text chunk; anything odd there is ignored, not fatal."""
    text = getattr(im, "text", {}).get(key) if hasattr(im, "text") else None
    if not text or len(text) > MAX_META_CHARS:
        return {}
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


def decode(source: bytes | str | Path | IO[bytes], name: str, meta_key: str = "",
           max_pixels: int | None = None, max_side: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(H x W x 3 uint8 pixels, meta) of a picture file's bytes; :class:`PictureError` for anything unusable."""
    most, side = limits(max_pixels, max_side)  # a bad environment variable is its own error, before any file is read
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with PILImage.open(fp) as im:
            check_size(name, im.width, im.height, most, side)
            note = ""
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
                note = f"{name} is animated ({frames} frames): the first frame was used"
            im.load()
            meta = _meta(im, meta_key) if meta_key else {}
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception as exc:  # damaged EXIF on a readable picture: use it as stored, and say so
                upright, note = im, f"{name}: EXIF orientation unreadable ({type(exc).__name__}), used as stored"
            rgb = _to_rgb(upright, name)
            pixels = np.array(rgb, dtype=np.uint8) if not isinstance(rgb, np.ndarray) else rgb
    except PictureError:
        raise
    except FileNotFoundError:
        raise
    except PILImage.DecompressionBombError as exc:  # PIL's own guard fired before the header reached us
        found = re.search(r"\((\d+) pixels\)", str(exc))
        if found and int(found.group(1)) > most:
            raise PictureError(_over(name, f"{int(found.group(1)) / 1e6:.1f} MP", most, side)) from None
        raise PictureError(f"{name}: refused by PIL as a decompression bomb ({exc}); PIL.Image.MAX_IMAGE_PIXELS sets that guard") from None
    except PILImage.UnidentifiedImageError:
        raise PictureError(f"{name}: not an image file PIL can read (PNG, JPEG, GIF, WebP, TIFF, BMP, ...)") from None
    except Exception as exc:  # a third-party decoder on untrusted bytes: truncated, corrupt, odd modes
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PictureError(f"{name}: truncated or corrupt picture file ({detail})") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise PictureError(f"{name}: decoded to an unusable shape {pixels.shape}")
    if note:
        log.warning(note)
        meta = {**meta, "load_note": note}
    return np.ascontiguousarray(pixels), meta
