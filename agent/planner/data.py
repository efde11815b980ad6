"""Generated (instruction, steps) pairs for training and evaluating the embedded planner.

Each *family* (background blur, tone, recolor, ...) has phrasing templates with slots
(subjects, object nouns, colours, styles, strength words); clauses combine into
compound requests ("..., then ..."), and politeness, slang, case and typos are added
on top. The gold answer is written in the steps form (agent/surface.py) following the
conventions in docs/catalogue.md. About one template in seven is held out of training
(by a stable hash of its id) so the public evaluation can measure paraphrase coverage.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

HELDOUT_EVERY = 7


@dataclass
class Clause:
    text: str
    steps: list[str]
    family: str
    templates: list[str]
    copied: list[str] = field(default_factory=list)  # slot values a typo must not touch


@dataclass
class Example:
    instruction: str
    steps: str
    family: str
    templates: list[str]

    @property
    def heldout(self) -> bool:
        return any(is_heldout(t) for t in self.templates)


def is_heldout(template_id: str) -> bool:
    return int(hashlib.sha1(template_id.encode()).hexdigest(), 16) % HELDOUT_EVERY == 0


# ---------------------------------------------------------------- vocabulary

PEOPLE = ["me", "him", "her", "them", "us", "the person", "the guy", "the man", "the woman", "the girl", "the boy",
          "the kid", "my friend", "my wife", "my husband", "my son", "my daughter", "the model", "the people",
          "the couple", "the astronaut", "my mom", "my dad", "the lady", "the dude", "myself", "the subject",
          "my girlfriend", "my boyfriend", "the bride", "the groom", "the kids", "the family", "the player"]
OBJECTS = ["car", "dog", "cat", "tree", "lamp post", "cup", "mug", "sign", "bird", "boat", "bike", "bicycle", "bench",
           "flower", "vase", "chair", "table", "bottle", "laptop", "phone", "bag", "hat", "shirt", "jacket", "dress",
           "umbrella", "truck", "bus", "house", "door", "window", "fence", "trash can", "sofa", "couch", "lamp",
           "clock", "book", "plate", "apple", "pizza", "horse", "cow", "rock", "wall", "road", "building", "kite",
           "balloon", "statue", "fountain", "tower", "bridge", "logo", "watermark", "cable", "power lines", "sticker",
           "scooter", "motorcycle", "rocket", "teapot", "pillow", "rug", "curtain", "poster", "plant", "cactus",
           "grass", "water", "clouds", "hair", "shoes", "glasses", "helmet", "suit", "flag", "van", "taxi", "tent",
           "sandwich", "cake", "guitar", "backpack", "scarf", "tie", "mailbox", "street light", "traffic cone",
           "graffiti", "leaves", "wine glass", "bowl", "coffee cup", "keyboard", "surfboard", "sailboat", "car door"]
OBJECT_ADJ = ["red", "blue", "white", "black", "small", "big", "old", "yellow", "green", "little", "tall", "wooden", "parked"]
DETERMINERS = ["the", "the", "the", "that", "this", "my", "his", "her", "our", "their"]
REGIONS = {"face": ["the face", "her face", "his face", "my face", "their faces", "the faces"],
           "sky": ["the sky", "the sky", "the clouds and sky"], "hair": ["the hair", "her hair", "his hair", "my hair"],
           "skin": ["the skin", "her skin", "my skin"]}
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
    ("contrast", 1): (["more contrasty", "punchier", "higher contrast", "crisper"],
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


def _fmt(v: float) -> str:
    return str(round(float(v), 2))


def _q(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


class Generator:
    """Draws clauses and full examples; ``split`` is 'train' (held-out templates excluded), 'heldout' or 'all'."""

    def __init__(self, seed: int = 0, split: str = "train") -> None:
        self.rng = random.Random(seed)
        self.split = split
        self.families: list[tuple[float, Callable[[], Clause]]] = [
            (10, self.background_blur), (4, self.whole_blur), (4, self.object_blur), (4, self.anonymize),
            (9, self.background_replace), (12, self.tone), (4, self.grayscale), (5, self.local_tone),
            (6, self.remove), (6, self.recolor), (4, self.replace), (7, self.stylize), (2, self.local_stylize),
            (4, self.upscale), (4, self.crop_aspect), (3, self.crop_face), (2, self.crop_object), (4, self.identity),
            (3, self.refine), (2, self.crop_box), (4, self.tone_noun),
        ]

    # -------------------------------------------------------------- helpers

    def pick(self, family: str, templates: list[str]) -> tuple[str, str]:
        """A template of the family allowed by the split, with its id (the template's own text, so adding
        templates to a family never moves the others across the split)."""
        indexed = [(f"{family}:{t}", t) for t in templates]
        if self.split == "train":
            indexed = [x for x in indexed if not is_heldout(x[0])] or indexed[:1]
        elif self.split == "heldout":
            indexed = [x for x in indexed if is_heldout(x[0])] or indexed
        return self.rng.choice(indexed)

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

    # -------------------------------------------------------------- families

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
        if is_person:
            steps = ['segment target="person"', "invert", f"blur amount={_fmt(amount)}"]
        else:
            steps = ['segment target="background"', f"blur amount={_fmt(amount)}"]
        return Clause(text, steps, "background_blur", [tid], [subj])

    def whole_blur(self) -> Clause:
        amount, pre, post = self.strength(default=0.5)
        tid, t = self.pick("whole_blur", [
            "blur the image{post}", "blur the photo{post}", "{pre}blur the picture", "make it {pre}blurry",
            "blur the whole thing{post}", "blur everything{post}", "add a {pre}blur", "make the whole photo {pre}soft",
            "gaussian blur it{post}", "make it out of focus{post}", "soften the entire image{post}", "blur it{post}",
            "give the whole picture a {pre}soft blur", "make the photo {pre}fuzzy", "defocus the whole shot{post}",
        ])
        text, amount = self.render(t, amount, 0.5, pre, post)
        return Clause(text, [f"blur amount={_fmt(amount)}"], "whole_blur", [tid])

    def object_blur(self) -> Clause:
        amount, pre, post = self.strength(default=0.5)
        phrase, target = self.obj()
        tid, t = self.pick("object_blur", [
            "blur {o}{post}", "{pre}blur {o}", "make {o} {pre}blurry", "blur out {o}{post}", "soften {o}{post}",
            "put a blur on {o}{post}", "i want {o} {pre}blurred", "defocus {o}{post}", "smudge {o}{post}",
        ])
        text, amount = self.render(t, amount, 0.5, pre, post, o=phrase)
        return Clause(text, [f"segment target={_q(target)}", f"blur amount={_fmt(amount)}"], "object_blur", [tid], [phrase])

    def anonymize(self) -> Clause:
        tid, t = self.pick("anonymize", [
            "blur the faces", "blur all faces", "blur everyone's faces", "anonymize the people", "anonymise the faces",
            "hide the faces", "censor the faces", "make the faces unrecognizable", "pixelate the faces",
            "blur out the faces for privacy", "protect their identity by blurring faces", "blur out every face",
            "make faces unidentifiable", "blur the face", "hide everyone's identity", "obscure the faces",
            "blur his face out", "blur her face so nobody can tell who it is", "anonymize this photo",
        ])
        return Clause(t, ["detect_faces", "mask_from_boxes", "blur amount=1.0"], "anonymize", [tid])

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
            arg, copied = f"color={_q(c)}", [c]
        elif kind == "gradient":
            c1, c2 = self.rng.sample(COLORS, 2)
            tid, t = self.pick("bg_gradient", [
                "replace the background behind {s} with a gradient from {c1} to {c2}",
                "give {s} a {c1} to {c2} gradient background", "make the background behind {s} a gradient, {c1} to {c2}",
                "put {s} on a gradient background going from {c1} to {c2}", "{c1}-to-{c2} gradient backdrop behind {s}",
                "make the background a {c1} to {c2} gradient", "gradient background from {c1} into {c2}",
                "change the backdrop to a gradient from {c1} to {c2}", "background fading from {c1} to {c2}",
            ])
            arg, copied = f"color={_q(c1)} color2={_q(c2)}", [c1, c2]
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
            arg, copied = f"prompt={_q(p)}", [p]
            t = t.replace("{p}", p)
        if "{s}" not in t:
            target = "person"
        text = t.replace("{s}", subj).replace("{c}", copied[0])
        return Clause(text, [f"segment target={_q(target)}", f"replace_background {arg}"], "background_replace", [tid],
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
    def _adjust(values: dict[str, float]) -> str:
        return "adjust " + " ".join(f"{k}={_fmt(values[k])}" for k in ORDER if k in values)

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

    def grayscale(self) -> Clause:
        g = self.rng.choice(GRAYSCALE)
        tid, t = self.pick("grayscale", ["make it {g}", "convert to {g}", "turn the photo {g}", "{g} please", "go {g}",
                                         "remove the color", "remove all colour", "make it {g}, no color", "i want it in {g}",
                                         "desaturate it completely", "drain all the color", "make the picture {g}"])
        return Clause(t.format(g=g), ["adjust saturation=-1.0"], "grayscale", [tid])

    def local_tone(self) -> Clause:
        values, comps, verbs = self._tone_parts(1)
        kind = self.rng.choice(["region", "object", "background", "except"])
        if kind == "region":
            target = self.rng.choice(list(REGIONS))
            where = self.rng.choice(REGIONS[target])
            seg = [f"segment target={_q(target)}"]
        elif kind == "object":
            where, target = self.obj()
            seg = [f"segment target={_q(target)}"]
        elif kind == "background":
            subj, target, is_person = self.subject()
            where = self.rng.choice([f"the background behind {subj}", "the background", "the bg"])
            seg = ['segment target="person"', "invert"] if is_person and subj in where else ['segment target="background"']
        else:
            subj = self.person()
            where = f"everything except {subj}"
            seg = ['segment target="person"', "invert"]
        if self.rng.random() < 0.25:
            g = self.rng.choice(GRAYSCALE)
            tid, t = self.pick("local_gray", ["make {w} {g}", "turn {w} {g}", "{w} in {g}", "only {w} should be {g}"])
            return Clause(t.format(w=where, g=g), [*seg, "adjust saturation=-1.0"], "local_tone", [tid], [where])
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

    def remove(self) -> Clause:
        phrase, target = self.obj()
        tid, t = self.pick("remove", [
            "remove {o}", "erase {o}", "delete {o}", "get rid of {o}", "take out {o}", "eliminate {o}", "make {o} disappear",
            "lose {o}", "nuke {o}", "edit out {o}", "i don't want {o} in the picture", "there's {o} in the way, remove it",
            "can we lose {o}", "wipe out {o}", "remove {o} from the photo", "clean up {o}", "photoshop out {o}",
            "{o} has to go", "kill {o}", "scrub {o} out of the shot", "remove {o} completely",
            "get {o} out of the picture", "cut {o} out of the photo", "take {o} away", "make the picture without {o}",
            "wipe {o} away", "zap {o}", "ditch {o}", "i'd rather not have {o} in it", "clear {o} from the frame",
        ])
        return Clause(t.format(o=phrase), [f"segment target={_q(target)}", "remove"], "remove", [tid], [phrase])

    def recolor(self) -> Clause:
        phrase, target = self.obj()
        c = self.color()
        tid, t = self.pick("recolor", [
            "make {o} {c}", "change {o} to {c}", "change the colour of {o} to {c}", "change the color of {o} to {c}",
            "paint {o} {c}", "turn {o} {c}", "recolor {o} {c}", "recolour {o} to {c}", "color {o} {c}", "i want {o} {c}",
            "{o} should be {c}", "switch {o} to {c}", "make {o} {c} instead", "give {o} a {c} color", "dye {o} {c}",
            "can {o} be {c}", "{c} {o} please", "tint {o} {c}",
        ])
        return Clause(t.format(o=phrase, c=c), [f"segment target={_q(target)}", f"recolor color={_q(c)}"], "recolor", [tid],
                      [phrase, c])

    def replace(self) -> Clause:
        phrase, target = self.obj()
        thing = self.rng.choice(THINGS)
        tid, t = self.pick("replace", [
            "replace {o} with {n}", "swap {o} for {n}", "turn {o} into {n}", "change {o} into {n}",
            "put {n} where {o} is", "exchange {o} for {n}", "swap out {o} for {n}", "replace {o} by {n}",
            "i want {n} instead of {o}", "make {o} {n} instead", "switch {o} with {n}",
            "put {n} in place of {o}", "{n} instead of {o}", "where {o} is, put {n}", "substitute {n} for {o}",
            "put {n} where {o} was", "have {n} there instead of {o}",
        ])
        return Clause(t.format(o=phrase, n=thing), [f"segment target={_q(target)}", f"replace prompt={_q(thing)}"], "replace",
                      [tid], [phrase, thing])

    def _style_steps(self, style: str) -> tuple[str, str]:
        """(strength phrase, step) — strength words are rare for styles."""
        if self.rng.random() < 0.12:
            amount = self.rng.choice([0.2, 0.7])
            word = self.rng.choice({0.2: ["a subtle", "a slight", "a light"], 0.7: ["a strong", "a heavy", "a very strong"]}[amount])
            return word, f"stylize style={_q(style)} strength={_fmt(amount)}"
        return "", f"stylize style={_q(style)}"

    def stylize(self) -> Clause:
        style = self.rng.choice(STYLES)
        word, step = self._style_steps(style)
        shown = string.capwords(style) if self.rng.random() < 0.25 else style  # 'Van Gogh' is still style "van gogh"
        if word:
            tid, t = self.pick("stylize_strength", ["give it {w} {st} look", "apply {w} {st} effect", "add {w} {st} style",
                                                    "{w} {st} filter please"])
        else:
            tid, t = self.pick("stylize", [
                "make it look like {st}", "turn it into {st}", "{st} style", "in the style of {st}", "give it a {st} look",
                "stylize it as {st}", "apply a {st} filter", "make this a {st}", "convert the photo to {st}",
                "redo it as {st}", "render it as {st}", "{st} effect please", "make it {st} style", "paint it like {st}",
                "make the photo look like {st}", "transform it into {st}", "style it like {st}", "{st}-ify it",
                "{st} effect on the whole thing", "do it in {st}", "{st} version please", "i'd love this as {st}",
                "can it look like {st}", "give the photo a {st} treatment",
            ])
        return Clause(t.format(st=shown, w=word), [step], "stylize", [tid], [shown])

    def local_stylize(self) -> Clause:
        style = self.rng.choice(STYLES)
        subj, target, is_person = self.subject()
        if self.rng.random() < 0.5:
            tid, t = self.pick("local_stylize_bg", ["make the background behind {s} look like {st}",
                                                    "turn the background behind {s} into {st}", "{st} style background behind {s}"])
            seg = ['segment target="person"', "invert"] if is_person else ['segment target="background"']
        else:
            tid, t = self.pick("local_stylize", ["turn only {s} into {st}", "make just {s} look like {st}", "{st} style on {s} only"])
            seg = [f"segment target={_q(target)}"]
        return Clause(t.format(s=subj, st=style), [*seg, f"stylize style={_q(style)}"], "local_stylize", [tid], [subj, style])

    def upscale(self) -> Clause:
        if self.rng.random() < 0.7:
            factor = self.rng.choice([2, 3, 4])
            f = self.rng.choice(FACTORS[factor])
            tid, t = self.pick("upscale_factor", [
                "upscale it {f}", "upscale {f}", "make it {f}", "enlarge it {f}", "increase the resolution {f}",
                "super-resolve it {f}", "scale it up {f}", "blow it up {f}", "upsample {f}", "resize it {f} bigger",
                "enhance the resolution {f}", "{f} upscale please", "make the image {f} larger",
            ])
            text = t.format(f=f)
        else:
            factor = 2
            tid, t = self.pick("upscale", [
                "upscale it", "enhance the resolution", "make it higher resolution", "super-resolve it", "make it bigger",
                "increase the resolution", "upsample it", "make it hd", "improve the resolution", "upres it",
                "make it sharper and bigger", "upscale the photo",
            ])
            text = t
        return Clause(text, [f"upscale factor={factor}"], "upscale", [tid])

    def crop_aspect(self) -> Clause:
        aspect = self.rng.choice(list(ASPECTS))
        a = self.rng.choice(ASPECTS[aspect])
        tid, t = self.pick("crop_aspect", [
            "crop it to {a}", "crop to {a}", "make it {a}", "cut it to {a}", "change the aspect ratio to {a}",
            "reframe as {a}", "crop the photo {a}", "{a} crop please", "make this a {a} image", "trim it to {a}",
            "crop it {a} for instagram", "i need it {a}", "set the aspect to {a}", "make the picture {a}",
        ])
        return Clause(t.format(a=a), [f"crop aspect={_q(aspect)}"], "crop_aspect", [tid], [a])

    def crop_face(self) -> Clause:
        tid, t = self.pick("crop_face", [
            "crop to the face", "crop to her face", "zoom in on his face", "make a headshot", "crop tightly around the face",
            "crop it to just the face", "frame the face", "crop around my face", "cut it down to the face",
            "give me a close-up of the face", "crop in on their face", "face crop please", "make it a profile picture of the face",
        ])
        return Clause(t, ["detect_faces", "crop"], "crop_face", [tid])

    def crop_object(self) -> Clause:
        phrase, target = self.obj()
        tid, t = self.pick("crop_object", ["crop to {o}", "crop around {o}", "zoom in on {o}", "crop it to just {o}",
                                           "frame {o}", "cut it down to {o}", "crop tight on {o}"])
        return Clause(t.format(o=phrase), [f"detect target={_q(target)}", "crop"], "crop_object", [tid], [phrase])

    def identity(self) -> Clause:
        inner = self.rng.choice([self.stylize, self.background_replace, self.tone, self.replace_hair])()
        tid, t = self.pick("identity", [
            "{e} but keep my face recognizable", "{e}, keep my face the same", "{e} but preserve my identity",
            "{e} without changing my face", "{e}, make sure it still looks like me", "{e} but don't change her face",
            "{e}, keep his face exactly the same", "{e} while keeping the face identical", "{e}; face must stay the same",
            "keep my face as is and {e}", "{e} but it has to still look like me",
        ])
        return Clause(t.format(e=inner.text), ["lock_identity", *inner.steps, "restore_identity"], "identity",
                      [tid, *inner.templates], inner.copied)

    def replace_hair(self) -> Clause:
        c = self.color()
        tid, t = self.pick("hair_color", ["make my hair {c}", "dye her hair {c}", "change his hair color to {c}", "{c} hair"])
        return Clause(t.format(c=c), ['segment target="hair"', f"recolor color={_q(c)}"], "recolor", [tid], [c])

    def refine(self) -> Clause:
        phrases = ["clean it up", "make it look natural", "finalize it", "polish it", "give it a final touch-up",
                   "make it look more realistic", "smooth out the edits", "harmonize it", "blend the edit in", "make it seamless",
                   "touch it up", "make it look less fake", "finish it off", "tidy it up so it looks real", "finalize this"]
        tid, t = self.pick("refine", phrases)
        if self.rng.random() < 0.3:  # two ways of saying the same thing are still one step
            t = f"{t} and {self.rng.choice([p for p in phrases if p != t])}"
        return Clause(t, ["refine"], "refine", [tid])

    def crop_box(self) -> Clause:
        x0, x1 = sorted(self.rng.sample(range(0, 2000, 10), 2))
        y0, y1 = sorted(self.rng.sample(range(0, 1500, 10), 2))
        tid, t = self.pick("crop_box", [
            "crop to the box from ({x0}, {y0}) to ({x1}, {y1})", "crop to x {x0}-{x1}, y {y0}-{y1}", "crop [{x0}, {y0}, {x1}, {y1}]",
            "crop the region {x0},{y0} to {x1},{y1}", "cut out the rectangle from ({x0},{y0}) to ({x1},{y1})",
            "crop from {x0},{y0} to {x1},{y1}", "keep only the area between ({x0}, {y0}) and ({x1}, {y1})",
        ])
        return Clause(t.format(x0=x0, y0=y0, x1=x1, y1=y1), [f"crop box=[{x0},{y0},{x1},{y1}]"], "crop_box", [tid])

    # -------------------------------------------------------------- examples

    def clause(self) -> Clause:
        weights = [w for w, _ in self.families]
        return self.rng.choices([f for _, f in self.families], weights=weights)[0]()

    def example(self) -> Example:
        n = self.rng.choices([1, 2, 3], weights=[60, 34, 6])[0]
        clauses = [self.clause() for _ in range(n)]
        while n > 1 and len({c.family for c in clauses}) < n:
            clauses = [self.clause() for _ in range(n)]
        text = clauses[0].text
        for c in clauses[1:]:
            text += self.rng.choice(CONNECT) + c.text
        copied = [w for c in clauses for w in c.copied]
        if self.rng.random() < 0.12:  # context that asks for no step
            text += self.rng.choice([", ", ". ", " - "]) + self.rng.choice(NEUTRAL)
        text = self.noise(self.rng.choice(PREFIX) + text + self.rng.choice(SUFFIX), copied)
        steps = [s for c in clauses for s in c.steps]
        templates = [t for c in clauses for t in c.templates]
        return Example(text, "\n".join(steps), "+".join(c.family for c in clauses), templates)

    def noise(self, text: str, copied: list[str]) -> str:
        """Case and the occasional typo, never inside words the answer copies."""
        protected = {w for phrase in copied for w in phrase.lower().split()}
        if self.rng.random() < 0.12:
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
