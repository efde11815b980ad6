"""Select regions by a colour word ("red", "light blue"): soft hue/saturation/value membership, cleaned into regions.

Each pixel belongs to the named colour it matches best, so an orange saucer is not
also "red" and "brown" at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from banana.experts.matting import components


@dataclass(frozen=True)
class Swatch:
    """A colour name as ranges in HSV (hue in degrees; None = any hue), with soft edges."""

    hue: float | None = None
    hue_width: float = 0.0
    sat: tuple[float, float] = (0.0, 1.0)
    val: tuple[float, float] = (0.0, 1.0)


SWATCHES: dict[str, Swatch] = {
    "red": Swatch(0, 10, (0.4, 1.0), (0.2, 1.0)),
    "orange": Swatch(24, 10, (0.45, 1.0), (0.45, 1.0)),
    "yellow": Swatch(52, 12, (0.35, 1.0), (0.4, 1.0)),
    "green": Swatch(112, 46, (0.2, 1.0), (0.08, 1.0)),
    "cyan": Swatch(182, 16, (0.2, 1.0), (0.2, 1.0)),
    "blue": Swatch(222, 28, (0.2, 1.0), (0.15, 1.0)),
    "purple": Swatch(272, 22, (0.2, 1.0), (0.15, 1.0)),
    "pink": Swatch(330, 22, (0.15, 0.7), (0.55, 1.0)),
    "brown": Swatch(22, 16, (0.3, 0.85), (0.1, 0.45)),
    "white": Swatch(None, 0, (0.0, 0.15), (0.8, 1.0)),
    "grey": Swatch(None, 0, (0.0, 0.15), (0.25, 0.8)),
    "black": Swatch(None, 0, (0.0, 1.0), (0.0, 0.18)),
}
ALIASES = {
    "gray": "grey", "silver": "grey", "crimson": "red", "scarlet": "red", "maroon": "red", "gold": "yellow", "golden": "yellow",
    "teal": "cyan", "turquoise": "cyan", "navy": "blue", "violet": "purple", "magenta": "pink", "tan": "brown",
    "reddish": "red", "orangey": "orange", "yellowish": "yellow", "greenish": "green", "bluish": "blue", "purplish": "purple",
    "pinkish": "pink", "brownish": "brown", "whitish": "white", "greyish": "grey", "grayish": "grey", "blackish": "black",
}  # fmt: skip
COLOUR_WORDS = frozenset(SWATCHES) | frozenset(ALIASES)
SOFT_HUE, SOFT_SV = 8.0, 0.06


def colour_name(word: str) -> str | None:
    """The swatch a word names, or None."""
    return word if word in SWATCHES else ALIASES.get(word)


def _ramp(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """1 inside [lo, hi], falling linearly to 0 over ``soft`` outside (open at the 0 and 1 ends)."""
    below = np.clip((x - lo) / soft + 1.0, 0.0, 1.0) if lo > 0 else 1.0
    above = np.clip((hi - x) / soft + 1.0, 0.0, 1.0) if hi < 1 else 1.0
    return below * above


def membership(hsv: np.ndarray, swatch: Swatch) -> np.ndarray:
    """How much each pixel looks like the swatch, in [0, 1]."""
    score = _ramp(hsv[..., 1], *swatch.sat, SOFT_SV) * _ramp(hsv[..., 2], *swatch.val, SOFT_SV)
    if swatch.hue is not None:
        dist = np.abs((hsv[..., 0] - swatch.hue + 180.0) % 360.0 - 180.0)
        score = score * np.clip(1.0 - (dist - swatch.hue_width) / SOFT_HUE, 0.0, 1.0)
    return np.asarray(score, np.float32)


def colour_alpha(rgb: np.ndarray, name: str) -> np.ndarray:
    """Soft membership of one named colour, zero where another named colour fits better."""
    hsv = cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), 1.0).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    scores = {n: membership(hsv, s) for n, s in SWATCHES.items()}
    best = np.max(np.stack(list(scores.values())), axis=0)
    return np.where(scores[name] >= best, scores[name], 0.0).astype(np.float32)


def colour_regions(rgb: np.ndarray, name: str, min_fraction: float = 0.001) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """Connected regions of a named colour, largest first, specks dropped."""
    binary = cv2.morphologyEx((colour_alpha(rgb, name) >= 0.5).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    min_area = max(16, round(min_fraction * binary.size))
    return components(binary.astype(bool), min_area)
