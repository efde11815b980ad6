"""Pixel plumbing every backbone shares: mask fitting, working sizes, and the exact keep-mask composite.

The composite is the one place the keep guarantee is made: whatever a pipeline did
(resizing to a multiple of 8, a VAE round trip, a fallback), pixels whose keep weight
is 1 are copied back from the input, bit for bit, at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from banana.tools.values import Image, Mask


def alpha_of(mask: Mask | None, height: int, width: int, default: float = 0.0) -> np.ndarray:
    """The mask's alpha at ``height`` x ``width`` (filled with ``default`` when there is no mask)."""
    if mask is None:
        return np.full((height, width), default, np.float32)
    a = mask.alpha
    if a.shape != (height, width):
        a = np.clip(cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return a


def working_size(height: int, width: int, longest: int, multiple: int) -> tuple[int, int]:
    """(height, width) with the aspect kept, the longest side ``longest`` (rounded down), both multiples of ``multiple``.

    Diffusion models draw best at their native size, so small pictures and crops are scaled up
    as well as big ones down. Latent pipelines need sides divisible by the VAE factor (8, or 16
    for FLUX's packed latents); resizing ourselves means the pipeline never silently changes the size.
    """
    scale = longest / max(height, width)
    h = max(multiple, int(height * scale) // multiple * multiple)
    w = max(multiple, int(width * scale) // multiple * multiple)
    return h, w


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), Lanczos when enlarging."""
    if pixels.shape[:2] == (height, width):
        return pixels
    shrinking = height * width < pixels.shape[0] * pixels.shape[1]
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def blend(changed: np.ndarray, original: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``changed`` where weight is 1, ``original`` where it is 0 (bit-identical there), a mix between."""
    out = original.copy()
    touched = weight > 0.0
    w = weight[touched][:, None].astype(np.float32)
    out[touched] = to_uint8(changed[touched].astype(np.float32) * w + original[touched].astype(np.float32) * (1.0 - w))
    return out


def keep_exact(result: np.ndarray, source: Image, keep: Mask | None) -> np.ndarray:
    """``result`` with the kept pixels restored from ``source``: keep 1 is bit-identical, fractions blend."""
    if result.shape != source.pixels.shape:
        raise ValueError(f"a backbone result must have the input's shape {source.pixels.shape}, got {result.shape}")
    if keep is None:
        return result
    return blend(result, source.pixels, 1.0 - alpha_of(keep, source.height, source.width))
