"""Colour names a user (or the planner) writes, turned into RGB: CSS names and ``#RRGGBB``."""

from __future__ import annotations

import difflib
import re
from functools import cache

import numpy as np

HEX = re.compile(r"^#?([0-9a-f]{6}|[0-9a-f]{3})$")
EXAMPLES = ("purple", "red", "navy", "gold", "light blue", "dark green", "#ff8800")


# Everyday names CSS lacks.
EVERYDAY = {"mint": "#98ff98", "mustard": "#e1ad01", "burgundy": "#800020", "rust": "#b7410e", "emerald": "#50c878"}


@cache
def css_colors() -> dict[str, str]:
    """CSS4 colour names (matplotlib's table) plus a few everyday names -> hex."""
    from matplotlib.colors import CSS4_COLORS

    return {**CSS4_COLORS, **EVERYDAY}


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.strip().lower())


def parse_color(text: str) -> np.ndarray:
    """RGB float32 in [0, 1] for a CSS colour name ("light blue" works) or a hex code."""
    key = _key(text)
    match = HEX.match(key)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return np.array([int(digits[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0
    names = css_colors()
    if key in names:
        return parse_color(names[key])
    close = difflib.get_close_matches(key, list(names), n=3, cutoff=0.75)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown colour {text!r}: {hint}use a CSS colour name or #RRGGBB, e.g. {', '.join(EXAMPLES)}")


# sRGB (D65) <-> CIE Lab without clipping: OpenCV's float Lab -> RGB clips silently, which would hide
# out-of-gamut colours (and shift their lightness) instead of letting the caller map them back in.
_XYZ_FROM_RGB = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB).astype(np.float32)
_WHITE = _XYZ_FROM_RGB.sum(axis=1)  # D65, Y = 1
_EPS = 6.0 / 29.0


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB floats in [0, 1] -> Lab (L in [0, 100])."""
    return linear_to_lab(srgb_to_linear(rgb))


LINEAR_OF_BYTE = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)  # uint8 -> linear: a table, equal to the formula


def linear_to_lab(lin: np.ndarray) -> np.ndarray:
    """Linear RGB -> Lab (what :func:`rgb_to_lab` does after the transfer curve; ``LINEAR_OF_BYTE[pixels]`` feeds it for 8-bit pictures)."""
    xyz = lin @ _XYZ_FROM_RGB.T / _WHITE
    f = np.cbrt(xyz)  # the same values as np.where(xyz > eps^3, cbrt, linear), with the linear part only where it applies
    low = xyz <= _EPS**3
    if low.any():
        f[low] = xyz[low] / (3 * _EPS**2) + 4.0 / 29.0
    lab = np.empty(f.shape, np.float32)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """Lab -> linear RGB, unclipped: values outside [0, 1] mean the colour is out of the sRGB gamut."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > _EPS, f**3, 3 * _EPS**2 * (f - 4.0 / 29.0)) * _WHITE
    return (xyz @ _RGB_FROM_XYZ.T).astype(np.float32)
