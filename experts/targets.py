"""What a ``segment``/``detect`` target phrase asks for, or a clear refusal.

The planner copies the user's noun ("the woman's hair", "red car", "the blue ones",
"the person on the left"). Parsing is strict on purpose: a word that names something
no offline model can see becomes an ``object`` target, which only the open-vocabulary
expert (configured weights) serves; without it the phrase is refused with the list of
what works, never answered with a wrong mask. A position or size word ("on the left",
"the largest") picks one instance among several (see :func:`pick_component`).
"""

from __future__ import annotations

import re
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel

from banana.experts.colour_regions import SWATCHES, colour_name

Kind = Literal["person", "face", "skin", "hair", "background", "sky", "subject", "colour",
               "text", "eyes", "lips", "teeth", "eyebrows", "object"]
Pick = Literal["left", "right", "top", "bottom", "center", "largest", "smallest"]

KIND_WORDS: dict[str, Kind] = {
    **dict.fromkeys(
        ("person", "persons", "people", "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "child", "children",
         "kid", "kids", "human", "humans", "figure", "lady", "ladies", "guy", "guys", "astronaut", "body", "friend", "friends",
         "me", "him", "us", "them", "myself", "himself", "herself"),
        "person",
    ),
    **dict.fromkeys(("face", "faces"), "face"),
    "skin": "skin",
    "hair": "hair",
    **dict.fromkeys(("background", "backdrop", "bg", "surroundings"), "background"),
    **dict.fromkeys(("sky", "skies"), "sky"),
    **dict.fromkeys(("subject", "foreground", "salient"), "subject"),
    **dict.fromkeys(("text", "texts", "caption", "captions", "watermark", "watermarks", "writing", "word", "words", "letters",
                     "lettering", "subtitle", "subtitles", "inscription"), "text"),
    **dict.fromkeys(("eye", "eyes"), "eyes"),
    **dict.fromkeys(("lip", "lips", "mouth"), "lips"),
    **dict.fromkeys(("teeth", "tooth"), "teeth"),
    **dict.fromkeys(("eyebrow", "eyebrows", "brow", "brows"), "eyebrows"),
}  # fmt: skip
PICK_WORDS: dict[str, Pick] = {
    **dict.fromkeys(("left", "leftmost"), "left"),
    **dict.fromkeys(("right", "rightmost"), "right"),
    **dict.fromkeys(("top", "topmost", "upper", "highest"), "top"),
    **dict.fromkeys(("bottom", "bottommost", "lower", "lowest"), "bottom"),
    **dict.fromkeys(("middle", "center", "centre", "central"), "center"),
    **dict.fromkeys(("largest", "biggest"), "largest"),
    **dict.fromkeys(("smallest", "tiniest"), "smallest"),
}  # fmt: skip
PICK_FILLER = frozenset("most side hand one".split())  # "the left-most one", "on the left-hand side"
STOP_WORDS = frozenset(
    "the a an all every any of in on this that these those my his her their its our your main s".split()
)
COLOUR_MODIFIERS = frozenset("light dark bright pale deep vivid".split())
GENERIC_NOUNS = frozenset("one ones thing things object objects stuff part parts area areas region regions".split())

KNOWN = (
    "segment knows person (people, man, woman...), face, skin, hair, eyes, lips, teeth, eyebrows, text (captions, "
    "watermarks), background, sky, subject (the main object), "
    f"and colour words ({', '.join(SWATCHES)}) optionally with a noun ('red car', 'the blue one'), each optionally with "
    "a position or size ('the person on the left', 'the largest face'); no offline model here recognises other objects "
    "by name (set BANANA_DETECTOR_WEIGHTS and BANANA_SAM_WEIGHTS to enable open-vocabulary segmentation)"
)


class Target(BaseModel):
    """A parsed target: the kind of region, and for colour targets the colour, an unverified noun, and how many."""

    phrase: str
    kind: Kind
    colour: str | None = None
    noun: str | None = None  # a noun no model here can see: the colour alone selects ("red car" = the largest red region)
    single: bool = False  # the largest region only ("the red one", "red car"), not every region of that colour
    pick: Pick | None = None  # one instance among several, by position or size ("the person on the left")


def cannot_find(phrase: str, why: str = "") -> ValueError:
    return ValueError(f"cannot find {phrase!r}" + (f" {why}" if why else "") + f": {KNOWN}")


def _plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def parse_target(phrase: str) -> Target:
    """Parse a target phrase, or raise ValueError naming what segment can find."""
    words = re.findall(r"[a-z]+", phrase.lower().replace("'s", " "))
    picks = list(dict.fromkeys(PICK_WORDS[w] for w in words if w in PICK_WORDS))
    if len(picks) > 1:
        raise ValueError(f"{phrase!r} names {' and '.join(picks)}: pick one position or size ('the person on the left')")
    pick = picks[0] if picks else None
    words = [w for w in words if w not in PICK_WORDS and not (pick and w in PICK_FILLER)]
    kinds = list(dict.fromkeys(KIND_WORDS[w] for w in words if w in KIND_WORDS))
    colours = list(dict.fromkeys(c for w in words if (c := colour_name(w))))
    unknown = [w for w in words if w not in KIND_WORDS and not colour_name(w) and w not in STOP_WORDS | COLOUR_MODIFIERS | GENERIC_NOUNS]
    if not words:
        raise cannot_find(phrase)
    if kinds:
        parts = [k for k in kinds if k != "person"]  # "the woman's hair" is hair
        if len(parts) > 1:
            raise ValueError(f"{phrase!r} names {' and '.join(parts)}: segment one at a time and join them with combine(op='union')")
        if unknown:
            raise cannot_find(phrase, f"(no model here understands {' '.join(unknown)!r})")
        return Target(phrase=phrase, kind=(parts or kinds)[0], pick=pick)
    if words == ["her"]:  # a possessive elsewhere ("her hair"), the person on its own
        return Target(phrase=phrase, kind="person", pick=pick)
    generic = [w for w in words if w in GENERIC_NOUNS]
    plural = any(_plural(w) for w in unknown + generic) or "all" in words
    if colours:
        if len(colours) > 1:
            raise ValueError(f"{phrase!r} names {' and '.join(colours)}: segment one colour at a time and join them with combine")
        single = bool(unknown or generic or pick) and not plural
        return Target(phrase=phrase, kind="colour", colour=colours[0], noun=" ".join(unknown) or None, single=single, pick=pick)
    if unknown:  # a noun only an open-vocabulary expert can see ("lamp post"); segment refuses it when none is configured
        return Target(phrase=phrase, kind="object", noun=" ".join(unknown), single=not plural, pick=pick)
    raise cannot_find(phrase)


def pick_index(centres: list[tuple[float, float]], areas: list[float], pick: Pick, size: tuple[int, int]) -> int:
    """Which of several instances (centre x, y and area each) a position or size word means; left/right as the viewer sees it."""
    h, w = size
    keys = {
        "left": lambda i: centres[i][0], "right": lambda i: -centres[i][0],
        "top": lambda i: centres[i][1], "bottom": lambda i: -centres[i][1],
        "largest": lambda i: -areas[i], "smallest": lambda i: areas[i],
        "center": lambda i: (centres[i][0] - w / 2) ** 2 + (centres[i][1] - h / 2) ** 2,
    }  # fmt: skip
    return min(range(len(centres)), key=keys[pick])


def pick_box(boxes: list[tuple[tuple[int, int, int, int], float]], pick: Pick, size: tuple[int, int]) -> list:
    """The one (box, score) among several that ``pick`` names."""
    if len(boxes) <= 1:
        return boxes
    centres = [((x0 + x1) / 2, (y0 + y1) / 2) for (x0, y0, x1, y1), _ in boxes]
    areas = [float((x1 - x0) * (y1 - y0)) for (x0, y0, x1, y1), _ in boxes]
    return [boxes[pick_index(centres, areas, pick, size)]]


def pick_component(alpha: np.ndarray, pick: Pick, min_share: float = 0.02) -> np.ndarray:
    """Keep the one connected region of a soft mask that ``pick`` names (with its soft edge).

    Regions smaller than ``min_share`` of the largest are specks, not instances.
    """
    n, labels, stats, centroids = cv2.connectedComponentsWithStats((alpha >= 0.5).astype(np.uint8), connectivity=8)
    if n <= 2:
        return alpha
    ids = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_share * stats[1:, cv2.CC_STAT_AREA].max()]
    chosen = ids[pick_index([tuple(centroids[i]) for i in ids], [float(stats[i, cv2.CC_STAT_AREA]) for i in ids], pick, alpha.shape)]
    # Nearest-region ownership keeps each region's soft edge with it and drops the others'.
    others = ((labels != chosen) & (labels > 0)).astype(np.uint8)
    own = (labels == chosen).astype(np.uint8)
    d_own = cv2.distanceTransform(1 - own, cv2.DIST_L2, 3)
    d_other = cv2.distanceTransform(1 - others, cv2.DIST_L2, 3)
    return np.where(d_own <= d_other, alpha, 0.0).astype(np.float32)
