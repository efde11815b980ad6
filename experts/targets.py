"""What a ``segment``/``detect`` target phrase asks for, or a clear refusal.

The planner copies the user's noun ("the woman's hair", "red car", "the blue ones").
Parsing is strict on purpose: a word that names something no offline model can see
is refused with the list of what works, never answered with a wrong mask.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from banana.experts.colour_regions import SWATCHES, colour_name

Kind = Literal["person", "face", "skin", "hair", "background", "sky", "subject", "colour"]

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
}  # fmt: skip
STOP_WORDS = frozenset(
    "the a an all every any of in on this that these those my his her their its our your main s".split()
)
COLOUR_MODIFIERS = frozenset("light dark bright pale deep vivid".split())
GENERIC_NOUNS = frozenset("one ones thing things object objects stuff part parts area areas region regions".split())

KNOWN = (
    "segment knows person (people, man, woman...), face, skin, hair, background, sky, subject (the main object), "
    f"and colour words ({', '.join(SWATCHES)}) optionally with a noun ('red car', 'the blue one'); "
    "no offline model here recognises other objects by name"
)


class Target(BaseModel):
    """A parsed target: the kind of region, and for colour targets the colour, an unverified noun, and how many."""

    phrase: str
    kind: Kind
    colour: str | None = None
    noun: str | None = None  # a noun no model here can see: the colour alone selects ("red car" = the largest red region)
    single: bool = False  # the largest region only ("the red one", "red car"), not every region of that colour


def cannot_find(phrase: str, why: str = "") -> ValueError:
    return ValueError(f"cannot find {phrase!r}" + (f" {why}" if why else "") + f": {KNOWN}")


def _plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def parse_target(phrase: str) -> Target:
    """Parse a target phrase, or raise ValueError naming what segment can find."""
    words = re.findall(r"[a-z]+", phrase.lower().replace("'s", " "))
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
        return Target(phrase=phrase, kind=(parts or kinds)[0])
    if words == ["her"]:  # a possessive elsewhere ("her hair"), the person on its own
        return Target(phrase=phrase, kind="person")
    if colours:
        if len(colours) > 1:
            raise ValueError(f"{phrase!r} names {' and '.join(colours)}: segment one colour at a time and join them with combine")
        generic = [w for w in words if w in GENERIC_NOUNS]
        plural = any(_plural(w) for w in unknown + generic) or "all" in words
        single = bool(unknown or generic) and not plural
        return Target(phrase=phrase, kind="colour", colour=colours[0], noun=" ".join(unknown) or None, single=single)
    raise cannot_find(phrase)
