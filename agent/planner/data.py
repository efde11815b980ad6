"""Generated (instruction, steps) pairs for training and evaluating the embedded planner.

The families live in tables (agent/planner/families.py): phrasing templates with slots
and the gold calls they mean. A few families that need logic (the subject decides the
background mask; several tone attributes at once; an identity lock around another
edit) are methods here. Clauses combine into compound requests ("..., then ..."),
and politeness, slang, case and typos are added on top. Every gold answer is built as
:class:`~banana.agent.planner.gold.Call` lists checked against the registry.

Held-out split: in every template group, the templates whose hash ranks 0, 7, 14, ...
within the group are held out of training (so every family with two or more templates
has at least one held out). A held-out example uses held-out templates only; a
training example none.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from banana.agent.planner import families as fam
from banana.agent.planner.families import TABLES, Family
from banana.agent.planner.gold import Call, refusal_text, steps_text
from banana.tools.registry import Registry

HELDOUT_EVERY = 7


@dataclass
class Clause:
    text: str
    calls: list[Call]
    family: str
    templates: list[str]
    copied: list[str] = field(default_factory=list)  # slot values a typo must not touch
    reason: str = ""  # a refusal
    solo: bool = False
    slots: dict[str, Any] = field(default_factory=dict)  # a table family's filled slots


@dataclass
class Example:
    instruction: str
    steps: str
    family: str
    templates: list[str]
    heldout: bool = False

    @property
    def refusal(self) -> bool:
        return self.steps.startswith("cannot ")


def template_id(group: str, template: str) -> str:
    return f"{group}:{template}"


def _rank_key(tid: str) -> int:
    return int(hashlib.sha1(tid.encode()).hexdigest(), 16)


def heldout_ids(group: str, templates: list[str] | tuple[str, ...]) -> set[str]:
    """The held-out template ids of a group: every 7th by hash rank, so each group of two or more keeps one out."""
    if len(templates) < 2:
        return set()
    ids = sorted((template_id(group, t) for t in templates), key=_rank_key)
    return {tid for i, tid in enumerate(ids) if i % HELDOUT_EVERY == 0}


# ---------------------------------------------------------------- vocabulary

PEOPLE = ["me", "him", "her", "them", "us", "the person", "the guy", "the man", "the woman", "the girl", "the boy",
          "the kid", "my friend", "my wife", "my husband", "my son", "my daughter", "the model", "the people",
          "the couple", "the astronaut", "my mom", "my dad", "the lady", "the dude", "myself", "the subject",
          "my girlfriend", "my boyfriend", "the bride", "the groom", "the kids", "the family", "the player"]
OBJECTS = ["car", "dog", "cat", "tree", "lamp post", "cup", "mug", "sign", "bird", "boat", "bike", "bicycle", "bench",
           "flower", "vase", "chair", "table", "bottle", "laptop", "phone", "bag", "hat", "shirt", "jacket", "dress",
           "umbrella", "truck", "bus", "house", "door", "window", "fence", "trash can", "sofa", "couch", "lamp",
           "clock", "book", "plate", "apple", "pizza", "horse", "cow", "rock", "wall", "road", "building", "kite",
           "balloon", "statue", "fountain", "tower", "bridge", "logo", "cable", "power lines", "sticker",
           "scooter", "motorcycle", "rocket", "teapot", "pillow", "rug", "curtain", "poster", "plant", "cactus",
           "grass", "water", "clouds", "hair", "shoes", "glasses", "helmet", "suit", "flag", "van", "taxi", "tent",
           "sandwich", "cake", "guitar", "backpack", "scarf", "tie", "mailbox", "street light", "traffic cone",
           "graffiti", "leaves", "wine glass", "bowl", "coffee cup", "keyboard", "surfboard", "sailboat", "car door",
           "license plate", "number plate", "trash bag", "crane", "scaffolding", "shopping cart", "candle"]
OBJECT_ADJ = ["red", "blue", "white", "black", "small", "big", "old", "yellow", "green", "little", "tall", "wooden", "parked"]
DETERMINERS = ["the", "the", "the", "that", "this", "my", "his", "her", "our", "their"]
REGIONS = {"face": ["the face", "her face", "his face", "my face", "their faces", "the faces"],
           "sky": ["the sky", "the sky", "the clouds and sky"], "hair": ["the hair", "her hair", "his hair", "my hair"],
           "skin": ["the skin", "her skin", "my skin"], "eyes": ["her eyes", "his eyes", "my eyes", "the eyes"],
           "lips": ["her lips", "my lips", "the lips"], "eyebrows": ["my eyebrows", "her eyebrows", "the eyebrows"]}
COLORS = ["red", "blue", "green", "yellow", "purple", "pink", "orange", "black", "white", "gray", "grey", "brown",
          "teal", "navy", "gold", "silver", "beige", "turquoise", "magenta", "cyan", "maroon", "olive", "lavender",
          "crimson", "lime", "violet", "indigo", "coral", "salmon", "khaki", "mint", "tan", "ivory", "aqua"]
PLACES = ["a beach", "a sunset", "the beach at sunset", "a snowy mountain", "a city skyline at night", "outer space",
          "a forest", "a plain studio backdrop", "paris", "the moon", "a field of flowers", "an office", "a tropical island",
          "a brick wall", "a library", "new york", "a desert", "an underwater reef", "a mountain lake", "a rainy street",
          "a cozy cafe", "a wheat field", "tokyo at night", "a castle", "a jungle", "a starry sky", "a football stadium",
          "the northern lights", "a neon city", "a cherry blossom park", "a sandy dune", "a lighthouse"]
THINGS = ["a red bicycle", "a cat", "a palm tree", "a vase of flowers", "a golden retriever", "a sports car",
          "a wooden bench", "a bouquet of roses", "a lamp", "a snowman", "a pumpkin", "a blue door", "a fountain",
          "a motorbike", "a teddy bear", "a stack of books", "a potted plant", "a sailboat", "a hot air balloon",
          "a pizza", "a cupcake", "an old car", "a horse", "a parrot", "a clock", "a mailbox", "a cactus"]
STYLES = ["watercolor", "watercolour", "oil painting", "pencil sketch", "sketch", "cartoon", "anime", "comic book",
          "pop art", "mosaic", "van gogh", "starry night", "impressionist", "cubist", "ukiyo-e", "stained glass",
          "pixel art", "charcoal drawing", "pastel drawing", "ink drawing", "the scream", "picasso", "monet",
          "renaissance painting", "graffiti", "woodcut", "cyberpunk", "children's drawing", "mural",
          "la muse", "candy", "feathers", "udnie", "wave", "rain princess", "kandinsky", "fresco", "pointillism"]
FACTORS = {2: ["2x", "2×", "twice as big", "double the size", "double the resolution", "x2", "by a factor of 2", "2 times"],
           3: ["3x", "3×", "three times bigger", "triple the size", "x3", "by a factor of 3", "3 times"],
           4: ["4x", "4×", "four times bigger", "quadruple the resolution", "x4", "by a factor of 4", "4 times"]}
ASPECTS = {"1:1": ["square", "1:1", "a square", "an instagram square"], "16:9": ["16:9", "widescreen", "16 by 9", "16x9"],
           "9:16": ["9:16", "vertical story format", "9 by 16"], "4:5": ["4:5", "4 by 5", "instagram portrait"],
           "4:3": ["4:3", "4 by 3"], "3:4": ["3:4"], "3:2": ["3:2", "3 by 2"], "2:3": ["2:3"], "5:4": ["5:4"],
           "21:9": ["21:9", "cinematic ultrawide", "ultrawide"]}

STRENGTH_PRE = {0.2: ["slightly ", "a bit ", "a little ", "a touch ", "a tad ", "a little bit ", "just slightly ", "subtly "],
                0.4: [""] * 6,
                0.7: ["much ", "a lot ", "very ", "really ", "significantly ", "considerably ", "way "],
                1.0: ["extremely ", "maximally ", "insanely ", "super ", "fully "]}
STRENGTH_POST = {0.2: [" a bit", " slightly", " a little", " just a touch", " a tiny bit", " a little bit"],
                 0.4: [""] * 5,
                 0.7: [" a lot", " a lot more", " significantly", " heavily", " by a lot", " alot", " really well"],
                 1.0: [" as much as possible", " to the max", " all the way", " completely", " maximum", " like crazy"]}

# tone: attribute, sign -> (comparatives, verbs)
TONE = {
    ("brightness", 1): (["brighter", "lighter", "less dark", "more exposed"],
                        ["brighten", "lighten", "brighten up", "increase the brightness of", "boost the exposure of", "lift"]),
    ("brightness", -1): (["darker", "dimmer", "less bright", "more shadowy"],
                         ["darken", "dim", "reduce the brightness of", "lower the exposure of", "tone down the brightness of"]),
    ("contrast", 1): (["more contrasty", "punchier", "higher contrast", "more punchy"],
                      ["increase the contrast of", "boost the contrast of", "add contrast to", "crank up the contrast on"]),
    ("contrast", -1): (["flatter", "lower contrast", "less contrasty", "softer in contrast"],
                       ["reduce the contrast of", "lower the contrast of", "flatten", "soften the contrast of"]),
    ("saturation", 1): (["more vivid", "more saturated", "more colorful", "more colourful", "richer in color", "more vibrant"],
                        ["saturate", "boost the colors of", "make pop the colors of", "intensify the colors of",
                         "increase the saturation of", "enrich the colours of"]),
    ("saturation", -1): (["less saturated", "more muted", "less colorful", "duller", "more washed out", "less vibrant"],
                         ["desaturate", "mute the colors of", "tone down the colors of", "reduce the saturation of",
                          "wash out"]),
    ("warmth", 1): (["warmer", "more golden", "more orange", "sunnier in tone"],
                    ["warm up", "add warmth to", "give a warm tint to", "increase the warmth of", "add a golden glow to"]),
    ("warmth", -1): (["cooler", "colder", "bluer", "icier"],
                     ["cool down", "add a cool tone to", "give a cold tint to", "reduce the warmth of", "cool off"]),
}
ORDER = ["brightness", "contrast", "saturation", "warmth"]
TONE_NOUNS = {
    ("brightness", 1): ["more brightness", "more light", "a brighter look", "more exposure"],
    ("brightness", -1): ["less brightness", "less light", "a darker look", "less exposure"],
    ("contrast", 1): ["more contrast", "higher contrast", "extra contrast"],
    ("contrast", -1): ["less contrast", "lower contrast", "a flatter look"],
    ("saturation", 1): ["more saturation", "more color", "more colour", "richer colors", "more vibrance"],
    ("saturation", -1): ["less saturation", "less color", "less colour", "muted colors", "softer colours"],
    ("warmth", 1): ["warmer tones", "a warmer tone", "warmer colors", "more warmth", "warmer colours"],
    ("warmth", -1): ["cooler tones", "a cooler tone", "colder colors", "less warmth", "cooler colours"],
}
NEUTRAL = ["leave the rest alone", "don't change anything else", "keep everything else as is", "nothing else",
           "it's for my linkedin", "it's for instagram", "this is for a client", "for my portfolio", "thanks in advance",
           "the rest is fine", "don't touch anything else", "it's a photo from my trip", "this is my favourite shot",
           "i took this yesterday", "it's for a birthday card", "keep it natural", "it's for my mum's fridge",
           "it's for the listing", "for my shop", "for our family album", "it's going on my website", "for a poster",
           "it's for the school newsletter", "my boss wants it", "for my dating profile", "it's my cat's birthday",
           "this is for a print", "it goes in my portfolio website", "for the church bulletin"]
SUBJECT_NEUTRAL = ["keep {s} sharp", "i want all the focus on {s}", "{s} should stay sharp", "keep {s} in focus",
                   "leave {s} alone", "don't touch {s}", "this is {s}"]
GRAYSCALE = ["black and white", "grayscale", "greyscale", "monochrome", "b&w", "black & white", "bw", "gray scale"]

PREFIX = [""] * 14 + ["please ", "pls ", "can you ", "could you ", "could you please ", "would you ", "i want to ",
                       "i'd like to ", "help me ", "hey, ", "ok ", "now ", "quick one: ", "go ahead and ", "try to ",
                       "let's ", "can u ", "plz ", "i need you to ", "kindly "]
SUFFIX = [""] * 14 + [" please", " pls", " thanks", " thx", "!", ".", " :)", " asap", " for me", " if possible",
                       " thank you", "!!", " lol", " ty"]
CONNECT = [", then ", " and then ", " and ", " and ", " and ", ". then ", ". also ", ", also ", "; ", " then ", ", and after that ",
           ". after that, ", " + ", ", plus ", " & ", ", and finally ", ". next, ", " and also ", ", and ", " as well as ",
           ". and ", " and i also want to ", ", oh and "]


def _fmt(v: float) -> float:
    return round(float(v), 2)


SLOT = re.compile(r"\{(-?)([a-z0-9_]+)\}")



# Slots drawn with one choice from a list (name -> the list), and slots drawn together from a list of pairs.
ONE_OF: dict[str, Sequence[Any]] = {
    "s": PEOPLE,
    "n": THINGS,
    "g": GRAYSCALE,
    "deg": fam.DEGREES,
    "px": fam.BORDER_PIXELS,
    "blk": fam.BLOCKS,
    "txt": fam.CAPTIONS,
    "tx": fam.TEXT_THINGS,
    "pw": fam.PEOPLE_WORDS,
    "side": ["left", "right"],
    "sky": fam.SKIES,
    "ins": fam.INSERTS,
    "tod": fam.TIMES,
    "season": fam.SEASONS,
    "light": fam.LIGHTS,
    "act": fam.ACTIONS,
    "look": fam.LOOKS,
    "mat": fam.MATERIALS,
    "stt": fam.STATES,
    "art": fam.ARTIFACTS,
    "fw": fam.FACE_WORDS,
    "pl": PLACES,
}
_PAIRS: list[tuple[tuple[str, str], Sequence[tuple[Any, Any]]]] = [
    (("tpos", "tpos_v"), fam.TEXT_POSITIONS),
    (("cn", "cns"), fam.COUNTABLE),
    (("rel", "rel_v"), fam.RELATIONS),
    (("pos", "pos_v"), fam.POSITIONS),
    (("wx", "wxn"), fam.WEATHER),
]
PAIR_OF = {name: (names, values) for names, values in _PAIRS for name in names}

class Generator:
    """Draws clauses and full examples; ``split`` is 'train' (held-out templates excluded), 'heldout' or 'all'.

    Gold answers are checked against ``registry`` (the default registry when none is given).
    """

    def __init__(
        self, seed: int = 0, split: str = "train", registry: Registry | None = None, focus: dict[str, float] | None = None,
        hard: bool = False,
    ) -> None:
        """``focus`` multiplies families' weights by name (self-play's measured weak spots: ``banana planner train --focus``);
        ``hard`` draws requests past the training mix (more compounds, typos and chatter), where self-play looks for misses.
        """
        if split not in ("train", "heldout", "all"):
            raise ValueError(f"split must be train, heldout or all, not {split!r}")
        self.rng = random.Random(seed)
        self.split = split
        self.clauses_weights, self.typo_rate, self.chatter_rate = ([35, 45, 20], 0.5, 0.3) if hard else ([60, 34, 6], 0.12, 0.12)
        if registry is None:
            from banana.tools.registry import default_registry

            registry = default_registry()
        self.registry = registry
        self.groups: dict[str, tuple[str, ...]] = {}  # every template group seen, for the split's bookkeeping
        methods: list[tuple[float, str, Callable[[], Clause]]] = [
            (10, "background_blur", self.background_blur), (9, "background_replace", self.background_replace),
            (12, "tone", self.tone), (5, "local_tone", self.local_tone), (4, "tone_noun", self.tone_noun),
            (2, "local_stylize", self.local_stylize), (4, "identity", self.identity), (3, "refine", self.refine),
            (1.5, "hair_color", self.replace_hair),
        ]
        self.families: list[tuple[float, str, Callable[[], Clause]]] = [
            *methods, *((f.weight, f.name, (lambda f=f: self.table(f))) for f in TABLES)]
        if focus:
            unknown = sorted(set(focus) - {CLAUSE_FAMILY.get(name, name) for _, name, _ in self.families})
            if unknown:
                raise ValueError(f"focus names unknown families: {', '.join(unknown)}")
            self.families = [(w * focus.get(CLAUSE_FAMILY.get(name, name), 1.0), name, fn) for w, name, fn in self.families]

    # -------------------------------------------------------------- helpers

    def pick(self, group: str, templates: list[str] | tuple[str, ...]) -> tuple[str, str]:
        """A template of the group allowed by the split, with its id."""
        if self.groups.setdefault(group, tuple(templates)) != tuple(templates):
            raise ValueError(f"template group {group!r} was used with two different template lists")
        held = heldout_ids(group, templates)
        indexed = [(template_id(group, t), t) for t in templates]
        if self.split == "train":
            indexed = [x for x in indexed if x[0] not in held]
        elif self.split == "heldout":
            indexed = [x for x in indexed if x[0] in held] or indexed  # a one-template group has nothing held out
        return self.rng.choice(indexed)

    def is_heldout(self, tid: str) -> bool:
        group = tid.split(":", 1)[0]
        return tid in heldout_ids(group, self.groups.get(group, ()))

    def strength(self, default: float = 0.4) -> tuple[float, str, str]:
        """(amount, pre-phrase, post-phrase) for one strength; a template uses the slot it has (see ``render``)."""
        amount = self.rng.choices([0.2, 0.4, 0.7, 1.0], weights=[3, 4, 3, 1.5])[0]
        pre = self.rng.choice(STRENGTH_PRE[amount]) if amount != 1.0 or self.rng.random() < 0.5 else ""
        return (default if amount == 0.4 else amount), pre, self.rng.choice(STRENGTH_POST[amount])

    @staticmethod
    def render(template: str, amount: float, default: float, pre: str, post: str, **slots: str) -> tuple[str, float]:
        """Fill a template; the strength goes where the template has a slot for it, else the default applies."""
        if "{pre}" in template and pre:
            post = ""
        elif "{post}" in template:
            pre = ""
        else:
            pre = post = ""
            amount = default
        if not (pre or post):
            amount = default
        return template.format(pre=pre, post=post, **slots), amount

    def person(self) -> str:
        return self.rng.choice(PEOPLE)

    def obj(self) -> tuple[str, str]:
        """(phrase as written, target) e.g. ('the red car', 'red car')."""
        noun = self.rng.choice(OBJECTS)
        if self.rng.random() < 0.2:
            noun = f"{self.rng.choice(OBJECT_ADJ)} {noun}"
        return f"{self.rng.choice(DETERMINERS)} {noun}", noun

    def color(self) -> str:
        if self.rng.random() < 0.12:
            hexcode = "#" + "".join(self.rng.choice("0123456789abcdef") for _ in range(6))
            return hexcode.upper() if self.rng.random() < 0.3 else hexcode
        return self.rng.choice(COLORS)

    def subject(self) -> tuple[str, str, bool]:
        """(phrase, segment target, is_person)."""
        if self.rng.random() < 0.65:
            return self.person(), "person", True
        phrase, target = self.obj()
        return phrase, target, False

    def _junk(self) -> str:
        n = self.rng.randint(3, 9)
        letters = string.ascii_lowercase if self.rng.random() < 0.8 else "qwertyuiopasdfghjklzxcvbnm"
        return "".join(self.rng.choice(letters) for _ in range(n))

    # -------------------------------------------------------------- table families

    def slot(self, name: str, values: dict[str, Any]) -> None:
        """Draw the slot ``name`` (and the slots drawn with it) into ``values``."""
        r = self.rng
        if name in ONE_OF:
            values[name] = r.choice(ONE_OF[name])
        elif name in PAIR_OF:
            first, second = PAIR_OF[name][0]
            values[first], values[second] = r.choice(PAIR_OF[name][1])
        elif name in ("o", "o_t"):
            values["o"], values["o_t"] = self.obj()
        elif name in ("ro", "ro_t", "ra"):  # any everyday noun (round 5): 'the toaster', 'toaster', 'a toaster'
            noun = r.choice(fam.EVERYDAY)
            values["ro"], values["ro_t"] = f"{r.choice(DETERMINERS)} {noun}", noun
            values["ra"] = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
        elif name in ("nn", "nn_t"):
            noun = r.choice(OBJECTS)
            values["nn"], values["nn_t"] = f"{r.choice(DETERMINERS)} {noun}", noun
        elif name in ("c1", "c2"):
            values["c1"], values["c2"] = r.sample([c for c in COLORS if c not in ("grey",)], 2)
        elif name == "c":
            values["c"] = self.color()
        elif name in ("st", "st_v"):
            style = r.choice(STYLES)
            values["st_v"] = style
            values["st"] = string.capwords(style) if r.random() < 0.25 else style  # 'Van Gogh' is still style "van gogh"
        elif name in ("w", "w_v"):
            values["w_v"] = r.choice([0.2, 0.7])
            values["w"] = r.choice({0.2: ["a subtle", "a slight", "a light"], 0.7: ["a strong", "a heavy", "a very strong"]}[values["w_v"]])
        elif name in ("f", "factor"):
            values["factor"] = r.choice([2, 3, 4])
            values["f"] = r.choice(FACTORS[values["factor"]])
        elif name in ("a", "aspect"):
            values["aspect"] = r.choice(list(ASPECTS))
            values["a"] = r.choice(ASPECTS[values["aspect"]])
        elif name in ("x0", "y0", "x1", "y1", "box"):
            x0, x1 = sorted(r.sample(range(0, 2000, 10), 2))
            y0, y1 = sorted(r.sample(range(0, 1500, 10), 2))
            values.update(x0=x0, y0=y0, x1=x1, y1=y1, box=[x0, y0, x1, y1])
        elif name in ("sup", "sup_t"):
            sup = r.choice(fam.SUPPORTS)
            values["sup"], values["sup_t"] = sup, sup.removeprefix("the ")
        elif name == "rand":
            values["rand"] = self._junk()
        else:
            raise KeyError(f"no slot named {name!r}")

    def table(self, f: Family) -> Clause:
        """One clause of a table family: pick a template, fill its slots, build the gold calls from the same values."""
        tid, t = self.pick(f.name, f.templates)
        values: dict[str, Any] = {}
        names = {m.group(2) for m in SLOT.finditer(t)}
        for _tool, args in f.calls:
            for v in args.values():
                if isinstance(v, str):
                    names |= {m.group(2) for m in SLOT.finditer(v)}
        for name in sorted(names - {"pre", "post", "amt"}):
            if name not in values:
                self.slot(name, values)
        if "rand" in names and "{rand} {rand}" in t:
            t = t.replace("{rand} {rand}", "{rand} " + self._junk())
        amount, pre, post = self.strength(default=f.amount)
        text, amount = self.render(t, amount, f.amount, pre, post, **{k: str(v) for k, v in values.items()})
        values["amt"] = amount
        copied = [str(v) for k, v in values.items() if isinstance(v, str) and k not in ("amt",)]
        if f.reason:
            return Clause(text, [], f.name, [tid], copied, reason=f.reason, solo=True)
        calls = [Call(tool, {k: self._fill(v, values) for k, v in args.items()}) for tool, args in f.calls]
        return Clause(text, calls, f.name, [tid], copied, slots=values)

    @staticmethod
    def _fill(value: Any, values: dict[str, Any]) -> Any:
        """A whole-slot value keeps its type ("{deg}" -> 90, "{-amt}" -> -0.4); inside a string it is text."""
        if not isinstance(value, str):
            return value
        m = SLOT.fullmatch(value)
        if m:
            v = values[m.group(2)]
            return -v if m.group(1) else v
        return SLOT.sub(lambda mm: str(values[mm.group(2)]), value)

    # -------------------------------------------------------------- families with logic

    def background_blur(self) -> Clause:
        amount, pre, post = self.strength(default=0.5)
        subj, _, is_person = self.subject()
        tid, t = self.pick("background_blur", [
            "blur the background behind {s}{post}", "{pre}blur the background behind {s}", "blur everything except {s}{post}",
            "blur everything but {s}{post}", "blur the background but keep {s} sharp{post}",
            "keep {s} in focus and blur the rest{post}", "make the background behind {s} {pre}blurry",
            "defocus the background behind {s}{post}", "add {pre}bokeh behind {s}", "make {s} stand out by blurring the background{post}",
            "soften the background behind {s}{post}", "{pre}blur out the background behind {s}", "blur the bg behind {s}{post}",
            "throw the background behind {s} out of focus{post}", "give {s} a {pre}blurry background",
            "i want the background behind {s} {pre}blurred", "portrait mode on {s}, {pre}blurry background",
            "shallow depth of field on {s}{post}", "put {s} in focus and blur what's behind{post}",
            "blur the backdrop behind {s}{post}", "make {s} pop with a {pre}blurred background",
            "blur the background{post}", "{pre}blur the background", "make the background {pre}blurry",
            "defocus the background{post}", "blur the bg{post}", "add a {pre}background blur", "blur the backdrop{post}",
            "i want a {pre}blurry background", "out-of-focus background{post}",
            "blur the background{post}, keep {s} sharp", "{pre}blur the background, i want all the focus on {s}",
            "make the background behind {s} {pre}blurry, keep {s} sharp", "blur the background{post} so {s} stands out",
        ])
        if "{s}" not in t:
            is_person = False
        text, amount = self.render(t.replace("{s}", subj), amount, 0.5, pre, post)
        mask = [Call("segment", {"target": "person"}), Call("invert")] if is_person else [Call("segment", {"target": "background"})]
        return Clause(text, [*mask, Call("blur", {"amount": _fmt(amount)})], "background_blur", [tid], [subj])

    def background_replace(self) -> Clause:
        subj, target, _ = self.subject()
        kind = self.rng.choices(["color", "gradient", "place"], weights=[4, 2, 4])[0]
        if kind == "color":
            c = self.color()
            tid, t = self.pick("bg_color", [
                "replace the background behind {s} with {c}", "make the background behind {s} {c}",
                "put {s} on a {c} background", "give {s} a plain {c} background", "change the background behind {s} to {c}",
                "swap the backdrop behind {s} for solid {c}", "remove the background behind {s} and make it {c}",
                "{c} background behind {s}", "i want a {c} backdrop behind {s}", "place {s} on a solid {c} background",
                "make the background {c}", "change the background to {c}", "replace the background with {c}",
                "{c} background please", "put it on a {c} background", "set the backdrop to {c}",
                "remove the background and fill it with {c}", "new background: {c}",
                "cut out {s} and put it on a {c} background", "isolate {s} on {c}", "put {s} on a plain {c} background",
                "cut {s} out onto a {c} backdrop",
            ])
            args, copied = {"color": c}, [c]
        elif kind == "gradient":
            c1, c2 = self.rng.sample(COLORS, 2)
            tid, t = self.pick("bg_gradient", [
                "replace the background behind {s} with a gradient from {c1} to {c2}",
                "give {s} a {c1} to {c2} gradient background", "make the background behind {s} a gradient, {c1} to {c2}",
                "put {s} on a gradient background going from {c1} to {c2}", "{c1}-to-{c2} gradient backdrop behind {s}",
                "make the background a {c1} to {c2} gradient", "gradient background from {c1} into {c2}",
                "change the backdrop to a gradient from {c1} to {c2}", "background fading from {c1} to {c2}",
            ])
            args, copied = {"color": c1, "color2": c2}, [c1, c2]
            t = t.replace("{c1}", c1).replace("{c2}", c2)
        else:
            p = self.rng.choice(PLACES)
            tid, t = self.pick("bg_place", [
                "put {s} on {p}", "replace the background behind {s} with {p}", "put {s} in front of {p}",
                "place {s} in {p}", "swap the background behind {s} for {p}", "change the background behind {s} to {p}",
                "make it look like {s} is in {p}", "move {s} to {p}", "i want {s} standing in front of {p}",
                "make the background {p}", "change the background to {p}", "replace the backdrop with {p}",
                "swap the bg for {p}", "new background: {p}", "put this in {p}", "background should be {p}",
            ])
            args, copied = {"prompt": p}, [p]
            t = t.replace("{p}", p)
        if "{s}" not in t:
            target = "person"
        text = t.replace("{s}", subj).replace("{c}", copied[0])
        return Clause(text, [Call("segment", {"target": target}), Call("replace_background", args)], "background_replace", [tid],
                      [subj, *copied])

    def _tone_parts(self, n_attrs: int) -> tuple[dict[str, float], list[str], list[str]]:
        """Values per attribute and the comparative / verb phrases used."""
        attrs = self.rng.sample(ORDER, n_attrs)
        values, comps, verbs = {}, [], []
        for attr in attrs:
            sign = self.rng.choice([1, -1])
            amount, pre, post = self.strength()
            comp, verb = TONE[(attr, sign)]
            values[attr] = sign * amount
            c = self.rng.choice(comp)
            comps.append(f"{pre}{c}" if pre else f"{c}{post}")
            verbs.append((self.rng.choice(verb), pre, post))  # type: ignore[arg-type]
        return values, comps, verbs  # type: ignore[return-value]

    @staticmethod
    def _adjust(values: dict[str, float]) -> Call:
        return Call("adjust", {k: _fmt(values[k]) for k in ORDER if k in values})

    def tone(self) -> Clause:
        n = self.rng.choices([1, 2], weights=[3, 1])[0]
        values, comps, verbs = self._tone_parts(n)
        thing = self.rng.choice(["it", "it", "the photo", "the image", "the picture", "this", "the shot", "everything"])
        if self.rng.random() < 0.55:
            tid, t = self.pick("tone_comp", ["make {x} {c}", "can it be {c}", "{x} should be {c}", "i want {x} {c}",
                                             "{c}", "make {x} look {c}", "{c} please", "turn {x} {c}", "get {x} {c}"])
            text = t.format(x=thing, c=" and ".join(comps))
        else:
            tid, t = self.pick("tone_verb", ["{v} {x}{post}", "{pre}{v} {x}", "go ahead and {v} {x}{post}"])
            parts = []
            for attr, (verb, pre, post) in zip(list(values), verbs, strict=True):  # type: ignore[misc]
                part, amount = self.render(t, abs(values[attr]), 0.4, pre, post, v=verb, x=thing)
                values[attr] = amount if values[attr] > 0 else -amount
                parts.append(part)
            text = " and ".join(parts)
        return Clause(text, [self._adjust(values)], "tone", [tid])

    def local_tone(self) -> Clause:
        values, comps, verbs = self._tone_parts(1)
        kind = self.rng.choice(["region", "object", "background", "except"])
        if kind == "region":
            target = self.rng.choice(list(REGIONS))
            where = self.rng.choice(REGIONS[target])
            seg = [Call("segment", {"target": target})]
        elif kind == "object":
            where, target = self.obj()
            seg = [Call("segment", {"target": target})]
        elif kind == "background":
            subj, target, is_person = self.subject()
            where = self.rng.choice([f"the background behind {subj}", "the background", "the bg"])
            person_bg = is_person and subj in where
            seg = [Call("segment", {"target": "person"}), Call("invert")] if person_bg else [Call("segment", {"target": "background"})]
        else:
            subj = self.person()
            where = f"everything except {subj}"
            seg = [Call("segment", {"target": "person"}), Call("invert")]
        if self.rng.random() < 0.25:
            g = self.rng.choice(GRAYSCALE)
            tid, t = self.pick("local_gray", ["make {w} {g}", "turn {w} {g}", "{w} in {g}", "only {w} should be {g}"])
            return Clause(t.format(w=where, g=g), [*seg, Call("adjust", {"saturation": -1.0})], "local_tone", [tid], [where])
        if self.rng.random() < 0.45:
            (attr,) = values
            verb, pre, post = verbs[0]  # type: ignore[misc]
            tid, t = self.pick("local_tone_verb", ["{v} only {w}{post}", "{pre}{v} {w}", "just {v} {w}{post}", "{v} {w} only{post}",
                                                   "{v} {w} and nothing else{post}", "only {v} {w}{post}"])
            text, amount = self.render(t, abs(values[attr]), 0.4, pre, post, v=verb, w=where)
            values[attr] = amount if values[attr] > 0 else -amount
            return Clause(text, [*seg, self._adjust(values)], "local_tone", [tid], [where])
        tid, t = self.pick("local_tone", ["make {w} {c}", "make only {w} {c}", "{w} should be {c}", "i want {w} {c}",
                                          "just make {w} {c}", "can you make {w} {c}", "{c} {w} only", "make {w} look {c}"])
        return Clause(t.format(w=where, c=comps[0]), [*seg, self._adjust(values)], "local_tone", [tid], [where])

    def tone_noun(self) -> Clause:
        """'warmer tones, just a touch', 'more contrast please'."""
        attr, sign = self.rng.choice(list(TONE_NOUNS))
        amount, pre, post = self.strength()
        tid, t = self.pick("tone_noun", ["{n}{post}", "{n} please{post}", "give it {pre}{n}", "i want {pre}{n}", "add {pre}{n}",
                                         "{pre}{n}", "{n}, {post2}", "a bit of {n}", "needs {pre}{n}"])
        if "{post2}" in t:
            t = t.replace("{post2}", "{post}").replace(", {post}", ",{post}")
        if t.startswith("a bit of"):
            text, amount = t.format(n=self.rng.choice(TONE_NOUNS[(attr, sign)])), 0.2
        else:
            text, amount = self.render(t, amount, 0.4, pre, post, n=self.rng.choice(TONE_NOUNS[(attr, sign)]))
        return Clause(text, [self._adjust({attr: sign * amount})], "tone", [tid])

    def local_stylize(self) -> Clause:
        style = self.rng.choice(STYLES)
        subj, target, is_person = self.subject()
        if self.rng.random() < 0.5:
            tid, t = self.pick("local_stylize_bg", ["make the background behind {s} look like {st}",
                                                    "turn the background behind {s} into {st}", "{st} style background behind {s}"])
            seg = [Call("segment", {"target": "person"}), Call("invert")] if is_person else [Call("segment", {"target": "background"})]
        else:
            tid, t = self.pick("local_stylize", ["turn only {s} into {st}", "make just {s} look like {st}", "{st} style on {s} only"])
            seg = [Call("segment", {"target": target})]
        return Clause(t.format(s=subj, st=style), [*seg, Call("stylize", {"style": style})], "local_stylize", [tid], [subj, style])

    def identity(self) -> Clause:
        inner = self.rng.choice([lambda: self.table(STYLIZE), self.background_replace, self.tone, self.replace_hair])()
        tid, t = self.pick("identity", [
            "{e} but keep my face recognizable", "{e}, keep my face the same", "{e} but preserve my identity",
            "{e} without changing my face", "{e}, make sure it still looks like me", "{e} but don't change her face",
            "{e}, keep his face exactly the same", "{e} while keeping the face identical", "{e}; face must stay the same",
            "keep my face as is and {e}", "{e} but it has to still look like me",
        ])
        return Clause(t.format(e=inner.text), [Call("lock_identity"), *inner.calls, Call("restore_identity")], "identity",
                      [tid, *inner.templates], inner.copied)

    def replace_hair(self) -> Clause:
        c = self.color()
        tid, t = self.pick("hair_color", ["make my hair {c}", "dye her hair {c}", "change his hair color to {c}", "{c} hair"])
        return Clause(t.format(c=c), [Call("segment", {"target": "hair"}), Call("recolor", {"color": c})], "hair_color", [tid], [c])

    def refine(self) -> Clause:
        phrases = ["clean it up", "make it look natural", "finalize it", "polish it", "give it a final touch-up",
                   "make it look more realistic", "smooth out the edits", "harmonize it", "blend the edit in", "make it seamless",
                   "touch it up", "make it look less fake", "finish it off", "tidy it up so it looks real", "finalize this"]
        tid, t = self.pick("refine", phrases)
        tids = [tid]
        if self.rng.random() < 0.3:  # two ways of saying the same thing are still one step
            tid2, t2 = self.pick("refine", phrases)
            if t2 != t:
                t, tids = f"{t} and {t2}", [tid, tid2]
        return Clause(t, [Call("refine")], "refine", tids)

    # -------------------------------------------------------------- examples

    def clause(self, solo: bool = True) -> Clause:
        fams = [(w, fn) for w, name, fn in self.families if solo or not TABLE_BY_NAME.get(name, STYLIZE).solo]
        return self.rng.choices([fn for _, fn in fams], weights=[w for w, _ in fams])[0]()

    def example(self) -> Example:
        first = self.clause()
        n = 1 if first.solo else self.rng.choices([1, 2, 3], weights=self.clauses_weights)[0]
        clauses = [first, *(self.clause(solo=False) for _ in range(n - 1))]
        while n > 1 and len({c.family for c in clauses}) < n:
            clauses = [first, *(self.clause(solo=False) for _ in range(n - 1))]
        text = clauses[0].text
        for c in clauses[1:]:
            text += self.rng.choice(CONNECT) + c.text
        copied = [w for c in clauses for w in c.copied]
        if not first.solo and self.rng.random() < self.chatter_rate:  # context that asks for no step
            text += self.rng.choice([", ", ". ", " - "]) + self.rng.choice(NEUTRAL)
        text = self.noise(self.rng.choice(PREFIX) + text + self.rng.choice(SUFFIX), copied)
        templates = [t for c in clauses for t in c.templates]
        if first.reason:
            steps = refusal_text(first.reason)
        else:
            steps = steps_text([call for c in clauses for call in c.calls], self.registry)
        held = all(self.is_heldout(t) for t in templates)
        return Example(text, steps, "+".join(c.family for c in clauses), templates, heldout=held)

    def noise(self, text: str, copied: list[str]) -> str:
        """Case and the occasional typo, never inside words the answer copies."""
        protected = {w for phrase in copied for w in phrase.lower().split()}
        if self.rng.random() < self.typo_rate:
            words = text.split(" ")
            idx = [i for i, w in enumerate(words) if len(w) > 4 and w.lower().strip(",.!?") not in protected and w.isalpha()]
            if idx:
                i = self.rng.choice(idx)
                w = words[i]
                j = self.rng.randrange(1, len(w) - 1)
                words[i] = self.rng.choice([w[:j] + w[j + 1:], w[:j] + w[j] + w[j:], w[:j - 1] + w[j] + w[j - 1] + w[j + 1:]])
                text = " ".join(words)
        if self.rng.random() < 0.3:
            text = text[:1].upper() + text[1:]
        return text

    def examples(self, n: int) -> list[Example]:
        seen: set[str] = set()
        out: list[Example] = []
        tries = 0
        while len(out) < n and tries < n * 20:
            tries += 1
            ex = self.example()
            if ex.instruction.lower() in seen:
                continue
            if self.split == "heldout" and not ex.heldout:
                continue
            seen.add(ex.instruction.lower())
            out.append(ex)
        return out


TABLE_BY_NAME = {f.name: f for f in TABLES}
CLAUSE_FAMILY = {"tone_noun": "tone"}  # generator entries whose clauses carry another family name
STYLIZE = TABLE_BY_NAME["stylize"]
FAMILY_NAMES = ["background_blur", "background_replace", "tone", "local_tone", "local_stylize", "identity", "refine", "hair_color",
                *TABLE_BY_NAME]
