"""Intent checks: does the plan do what the request's own words ask? (No model: a few cue words.)

Three measurable mistakes the planner makes and no pixel check can see:
- scope reversed: "darken everything except him" planned on the person (``invert`` missing),
  "keep only the dog in colour" greying the dog;
- direction reversed: "brighter" planned with a negative brightness, "remove the blur" planned as a blur;
- a clause dropped: "blur the background and make it black and white" with no adjust step.
Also facts of language and of the catalogue the planner gets wrong: sign words ("less contrast",
"tone down the saturation", "contrast -1"), "upside down" is a half turn and "flip / mirror" a mirror,
a pencil / charcoal drawing is the grey "pencil" style, a colour given to a region is a recolor (a new
background for the backdrop), "her face" is the face and not the whole person, "leave the background
alone" is not an edit of it, and values the request states exactly (30 px, 3x, 16:9, a caption's place).
Each finding is a hard :class:`CheckResult` with one line of advice, and where one step
fixes it (invert the mask, flip a sign) a :class:`Fix` the loop applies without re-planning.
Cues are deliberately conservative: a request with no clear cue is not judged.
"""

from __future__ import annotations

import re
from typing import Any

from banana.agent.describe import edit_nodes, mask_targets
from banana.agent.program import ValidProgram, is_ref, ref_name
from banana.tools.checks import CheckResult, Fix
from banana.tools.registry import Registry

OUTSIDE = re.compile(
    r"\b(except|apart from|other than|but (?:not )?(?:the |his |her |my |their )?(?:person|him|her|me|them|face)|"
    r"behind|background|backdrop|bg|surroundings|everything else|everything but|all but|the rest|around (?:him|her|me|them|it|the \w+)|"
    r"keep (?:only )?(?:the |my |his |her )?[\w ]{1,20}? in colou?r|"
    r"only (?:the |my |his |her )?[\w ]{1,20}? (?:in|stays?|remains?) colou?r)\b",
    re.I,
)
# "leave the background alone", "rest is fine": the place NOT to edit, which says nothing about editing around the subject
KEEP_ALONE = re.compile(
    r"\b(?:leave|keep|don'?t touch|do not touch|without touching|not)\s+"
    r"(?:the\s+)?(?:background|backdrop|bg|surroundings|rest|everything else)"
    r"(?:\s+(?:alone|as (?:it )?is|untouched|unchanged|the same|intact|as they are))?\b|"
    r"\b(?:the\s+)?(?:rest|background|backdrop|bg|surroundings|everything else)\s+(?:is|looks|stays?)\s+(?:fine|ok|okay|good|the same)\b",
    re.I,
)
SELECTIVE_COLOUR = re.compile(r"\b(keep|leave|only)\b[^.]{0,40}\bin colou?r\b|\bcolou?r splash\b", re.I)
NEGATED_BLUR = re.compile(
    r"\b(unblur|deblur|de-blur|remove (?:the )?blur|less blurry|not blurry|fix (?:the )?blur|sharpen|too blurry|"
    r"blurry (?:photo|picture|image|pic|shot|photograph|one)|"
    r"(?:is|are|looks?|was|seems?|'s) (?:a (?:bit|little) |kinda |so |too |very |slightly )?(?:blurry|out of focus|soft|fuzzy|unsharp))\b",
    re.I,
)
# a complaint about the picture asks for the opposite: "its kinda dark", "garage pic is super gloomy" (not "make it dark")
COMPLAINT = r"(?:it'?s|it is|is|are|was|looks|looking|seems)\s+(?:(?!not\b|no\b|never\b)[a-z]+\s+){0,3}?"
BRIGHTER = re.compile(
    r"\b(brighten|brighter|lighten|lighter|more light|too dark|underexposed|"
    rf"{COMPLAINT}(?:dark(?!\s+(?:blue|red|green|grey|gray|brown))|gloomy|murky))\b",
    re.I,
)
DARKER = re.compile(r"\b(darken|darker|dim|dimmer|too bright|overexposed|moody)\b", re.I)
WARMER = re.compile(r"\b(warmer|warm it|warm up|warm tones?|golden|too cold|too blue)\b", re.I)
COOLER = re.compile(r"\b(cooler|cool it|cool down|cool tones?|colder|too warm|too yellow|too orange)\b", re.I)
BW_LOOK = re.compile(r"\bblack\s*(?:and|&|/|n)\s*white\b|\bb\s*[&/]\s*w\b")  # "black and white" is a look, not a colour (lower case)
# "down to like half, not full black and white": less colour, but not none
NOT_GREY = re.compile(
    r"\b(?:not|no|but not|without going|don'?t go)\s+(?:(?:full|fully|all the way|completely|totally|entirely|100 ?%)\s+)?(?:to\s+)?"
    r"(?:black and white|black & white|b&w|b/w|gr[ae]yscale|monochrome|gr[ae]y)\b",
    re.I,
)
GREY = re.compile(r"\b(black and white|black & white|b&w|b/w|gr[ae]yscale|monochrome|desaturate[d]?|colou?rless|gr[ae]y ?out)\b", re.I)
VIVID = re.compile(
    rf"\b({COMPLAINT}(?:dull|washed[- ]out|lifeless)|"
    r"more saturat\w*|saturate|vivid|vibrant|punchier|more colou?rful|pop|"
    r"(?:deeper|richer|more intense|stronger) (?:colou?rs?|white|black|grey|gray|red|blue|green|yellow|orange|purple|pink|brown|"
    r"gold|navy)s?)\b",
    re.I,
)
# a statistic's name after a word that raises or lowers it ("less contrast", "tone down the saturation", "contrast -1")
UP_WORDS = (
    r"lift(?:ed)?|open(?:ed)? up|bring up|more|increase[ds]?|boost(?:ed)?|raise[ds]?|higher|high|stronger|bump(?:ed)? up|"
    r"crank(?:ed)? up|turn(?:ed)? up|pump(?:ed)? up|add(?: some| a bit of)?"
)
DOWN_WORDS = (
    r"less|reduce[ds]?|decrease[ds]?|lower(?:ed)?|low|weaker|softer|soften(?:ed)?|tone(?:d)? down|turn(?:ed)? down|dial(?:led)? down|"
    r"bring down|cut|drop|mute[ds]?|too much|remove some"
)
STAT_NAMES = {
    "brightness": r"brightness|exposure",
    "contrast": r"contrast",
    "saturation": r"saturation|colou?rs|colou?rfulness|vibrance",
    "warmth": r"warmth|colou?r temperature",
    "shadows": r"shadows|dark areas|darks",
}


def _signed(stat: str, up: bool) -> re.Pattern[str]:
    words, number = (UP_WORDS, r"\+\s?\d") if up else (DOWN_WORDS, r"-\s?\d")
    name = STAT_NAMES[stat]
    after = rf"\b(?:{name})\s+(?:{number}|{'up' if up else 'down'}\b)"  # "contrast -1", "brightness down"
    return re.compile(rf"\b(?:{words})\s+(?:the\s+|some\s+|a\s+(?:bit|little|touch)\s+(?:of\s+)?)?(?:{name})\b|{after}", re.I)


SIGNED = {(stat, up): _signed(stat, up) for stat in STAT_NAMES for up in (True, False)}
UPSIDE_DOWN = re.compile(r"\bupside[- ]down\b", re.I)
MIRROR = re.compile(r"\b(flip\w*|mirror\w*)\b", re.I)
TURN = re.compile(r"\b(rotat\w*|turn\w*|degrees?|clockwise|counter[- ]?clockwise|anti[- ]?clockwise|\d+\s*°)", re.I)
GREY_DRAWING = re.compile(r"(?<!coloured )(?<!colored )(?<!colour )(?<!color )\b(pencil|graphite|charcoal)\b", re.I)
OUTSIDE_WORDS = ("background", "backdrop", "bg", "surroundings", "sky")
CLAUSES: dict[str, tuple[str, tuple[str, ...]]] = {  # a request word -> the steps that can do it
    "blur": (r"blur+(?:red|ry)?|defocus|bokeh|out of focus", ("blur",)),
    "tone": (
        r"brighten|brighter|lighten|darken|darker|black and white|b&w|gr[ae]yscale|monochrome|desaturate|contrast",
        ("adjust", "enhance", "stylize", "retouch"),
    ),
    "crop": (r"crop|square format|16:9|9:16|4:3|3:2|aspect", ("crop",)),
    "upscale": (r"upscale|enlarge|upsize|higher resolution|super.?resolution|[234]x bigger", ("upscale",)),
    "remove": (
        r"remove|erase|get rid of|delete|take out",
        ("remove", "replace", "edit", "retouch", "denoise", "sharpen", "enhance", "dehaze", "replace_background", "adjust"),
    ),
    "sharpen": (r"sharpen|deblur|unblur|less blurry|crisper", ("sharpen", "enhance", "upscale")),
    "denoise": (r"denoise|noisy|grainy|(?:reduce|remove|get rid of|clean up|less|fix|kill) (?:the |some |all the )?(?:noise|grain)",
                ("denoise", "enhance", "blur")),
    "flip": (r"flip\w*|mirror\w*", ("flip", "rotate")),
    "rotate": (r"rotate\w*|upside down", ("rotate", "flip", "straighten")),
    "border": (r"border|frame", ("border",)),
    "pixelate": (r"pixel+ate|pixeli[sz]e|censor", ("pixelate", "blur")),
    "dehaze": (r"haze|hazy|dehaze|fog|foggy|misty", ("dehaze", "enhance")),
    "text": (  # words to add; "blur the watermark" names a place, not a caption
        r"write|writing|headline|caption (?:it|this)|(?:add|put|place|stamp|overlay|insert)\s+(?:a\s+|an\s+|some\s+|the\s+|my\s+)?"
        r"(?:caption|text|title|headline|watermark|label|words?)|(?:add|put|place|stamp|overlay)\s+[\"\u201c'\u2018]",
        ("add_text",),
    ),
}
SUBJECT = re.compile(
    r"\b(him|her|he|she|his|person|man|woman|guy|girl|boy|lady|face|skin|hair|the (?:cat|dog|subject|flowers?|cup|mug))\b", re.I
)
PERSON_WORDS = re.compile(r"\b(him|her|he|she|his|person|man|woman|guy|girl|boy|lady|people|me|them|face)\b", re.I)
KEEP_COLOUR = re.compile(
    r"\b(?:keep|leave)\s+(?:only\s+)?(?:the\s+|my\s+|his\s+|her\s+|their\s+)?(?P<noun>[a-z]+(?:\s[a-z]+)?)\s+"
    r"(?:in\s+)?(?P<colour>red|blue|green|yellow|orange|purple|pink|brown|gold)\b",
    re.I,
)
COLOUR_WORDS = ("white", "black", "grey", "gray", "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "gold", "navy")
QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]{1,100})[\"\u201d]|(?:^|\s)['\u2018]([^'\u2019]{1,100})['\u2019](?=$|[\s.,!?])")
ASPECTS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "4:5", "5:4", "21:9")
PAINT_COLOURS = (*COLOUR_WORDS, "teal", "cyan", "magenta", "violet", "beige", "cream", "turquoise", "silver", "lilac")
# "make the sky a deep blue", "turn the background white", "change the flower to yellow": a thing given a colour
SHADES = "deep|dark|light|bright|pale|pure|plain|solid|soft|vivid|rich|nice"
PAINT = re.compile(
    r"\b(?:make|turn|change|paint|colou?r|dye|switch)\s+(?:the\s+|her\s+|his\s+|my\s+|their\s+|its\s+)?"
    rf"(?P<noun>[a-z]+(?:\s(?!(?:{SHADES}|to|into|in|an?)\b)[a-z]+)?)\s+"
    rf"(?:to\s+|into\s+|in\s+)?(?:a\s+|an\s+)?(?:(?:{SHADES})\s+)?"
    rf"(?P<colour>{'|'.join(PAINT_COLOURS)})\b(?!\s*(?:and|&|/)\s*white)",
    re.I,
)
GLOBAL_NOUNS = ("it", "this", "that", "photo", "picture", "image", "pic", "everything", "all", "whole picture", "whole photo", "tone")
BACKGROUND_NOUNS = ("background", "backdrop", "bg", "backgound", "back ground")


NEGATOR = re.compile(  # "less vivid", "not so bright", "don't make it any darker", "without getting darker"
    r"\b(?:less|not so|not as|not too|no longer|"
    r"(?:don'?t|do not|never|without)\s+(?:make\s+it\s+|making\s+it\s+|go\s+|get\s+|getting\s+|let\s+it\s+(?:get|go)\s+)?"
    r"(?:any\s+|too\s+|so\s+|much\s+)?|(?:not|no)\s+(?:any\s+)?)\s*$",
    re.I,
)


def _says(pattern: re.Pattern[str], text: str) -> tuple[bool, bool]:
    """Whether a cue is said plainly, and whether it is said negated ("less vivid", "not so bright")."""
    plain = negated = False
    for m in pattern.finditer(text):
        if NEGATOR.search(text[: m.start()]):
            negated = True
        else:
            plain = True
    return plain, negated


def _colour_near(low: str, nouns: str) -> str | None:
    """The colour word said with one of ``nouns`` ("a grey frame", "text in yellow"), else "in <colour>", else the first one said."""
    colours = "|".join(COLOUR_WORDS)
    for pattern in (rf"\b({colours})\s+(?:\w+\s+)?(?:{nouns})\b", rf"\b(?:{nouns})\s+(?:in\s+)?({colours})\b", rf"\bin\s+({colours})\b"):
        m = re.search(pattern, low)
        if m:
            return m.group(1)
    m = re.search(rf"\b({colours})\b", low)
    return m.group(1) if m else None


def step_for(clause: str, text: str, registry: Registry) -> dict[str, Any] | None:
    """The one global step a missing clause asks for, with the args its words give; None when it needs more than words."""
    low = QUOTED.sub(" ", text).lower()  # a caption's own words ("Red Sky at Night") say nothing about colour or place
    low = BW_LOOK.sub(" ", low)  # a look, not a border's colour
    args: dict[str, Any] = {}
    tool = {
        "flip": "flip",
        "rotate": "rotate",
        "border": "border",
        "sharpen": "sharpen",
        "denoise": "denoise",
        "dehaze": "dehaze",
        "upscale": "upscale",
        "crop": "crop",
        "blur": "blur",
        "text": "add_text",
    }.get(clause)
    if tool is None or tool not in registry:
        return None
    if tool in ("blur", "sharpen") and (OUTSIDE.search(text) or SUBJECT.search(text)):  # denoise keeps edges: global is fine
        return None  # a local edit needs a mask: that is a re-plan, not a fixed step
    if tool == "flip":
        args["direction"] = "vertical" if re.search(r"vertical|upside|top to bottom|bottom to top", low) else "horizontal"
    elif tool == "rotate":
        if re.search(r"upside down|180", low):
            args["degrees"] = 180
        elif re.search(r"counter|anti|\bleft\b", low):
            args["degrees"] = 90
        elif re.search(r"clockwise|\bright\b", low):
            args["degrees"] = -90
        else:
            return None
    elif tool == "border":
        colour = _colour_near(low, r"border|frame")
        if colour:
            args["color"] = colour
        px = re.search(r"(\d{1,3})\s*(?:px|pixels?)", low)
        if px:
            args["pixels"] = int(px.group(1))
    elif tool == "upscale":
        f = re.search(r"\b([234])\s*x\b|\bx\s*([234])\b", low)
        args["factor"] = int(f.group(1) or f.group(2)) if f else 2
    elif tool == "add_text":
        quoted = QUOTED.search(text)
        if not quoted:
            return None  # the words to write must be given exactly
        args["text"] = (quoted.group(1) or quoted.group(2)).strip()
        vertical = (
            "top" if re.search(r"\btop\b|\babove\b", low) else ("center" if re.search(r"\bcent(?:er|re)\b|\bmiddle\b", low) else "bottom")
        )
        horizontal = next((h for h in ("left", "right") if re.search(rf"\b{h}\b", low)), "")
        args["position"] = f"{vertical}-{horizontal}" if horizontal and vertical != "center" else vertical
        colour = _colour_near(low, r"text|caption|title|letters|font|writing")
        if colour:
            args["color"] = colour
    elif tool == "crop":
        a = next((a for a in ASPECTS if a in low), "1:1" if "square" in low else None)
        if a is None:
            return None
        args["aspect"] = a
    return {"tool": tool, "args": args}


CLAUSE_RES = {k: (re.compile(rf"\b({pattern})\b", re.I), tools) for k, (pattern, tools) in CLAUSES.items()}
TONE_WORDS = ((DARKER, "brightness", -0.3), (BRIGHTER, "brightness", 0.3), (GREY, "saturation", -1.0))


def _tone_step(text: str, valid: ValidProgram, edits: list[str]) -> dict[str, Any] | None:
    """The adjust a dropped tone clause asks for ("darken the bg, blur it slightly": the darkening), on the same mask as the
    plan's masked edits when the request scopes it and they all share one; None when the words or the place are unclear."""
    said = [(arg, value) for pattern, arg, value in TONE_WORDS if _says(pattern, text)[0]]
    args = dict(said)
    if not args or len(args) != len(said):
        return None  # nothing, or two cues for one setting ("darker here, brighter there")
    masks = {str(valid.program.node(n).args.get("mask")) for n in edits if valid.program.node(n).args.get("mask") is not None}
    scoped = bool(OUTSIDE.search(text) or SUBJECT.search(text))
    if scoped and len(masks) != 1:
        return None
    return {"tool": "adjust", "args": {**args, **({"mask": masks.pop()} if scoped else {})}}


def _mask_target(valid: ValidProgram, nid: str, targets: dict[str, str]) -> str | None:
    ref = valid.program.node(nid).args.get("mask")
    return targets.get(ref_name(ref), "") if is_ref(ref) else None


def _inside_subject(target: str) -> bool:
    """A mask that selects a subject itself (not the background around it)."""
    return bool(target) and not target.startswith("not ") and not any(w in target for w in OUTSIDE_WORDS)


# words the cues read; a request's word one transposed, missing or doubled letter away from one is read as it
CUE_WORDS = frozenset(
    "brighten brighter lighten lighter darken darker warmer cooler sharpen sharper saturation saturate saturated contrast "
    "background backdrop remove blurry blurred except everything mirror rotate upside vivid vibrant colour color colourful "
    "colorful greyscale grayscale monochrome contrasty".split()
)


def _one_slip(typed: str, word: str) -> bool:
    """``typed`` is ``word`` with two neighbouring letters swapped, one letter missing or one letter doubled."""
    if len(typed) == len(word):
        diff = [i for i, (a, b) in enumerate(zip(typed, word, strict=True)) if a != b]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == word[diff[1]] and typed[diff[1]] == word[diff[0]]
    short, long = sorted((typed, word), key=len)
    if len(long) - len(short) != 1:
        return False
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    doubled = (i > 0 and long[i] == long[i - 1]) or (i + 1 < len(long) and long[i] == long[i + 1])
    return short[i:] == long[i + 1 :] and (len(typed) < len(word) or doubled)


def spelled(text: str) -> str:
    """``text`` with slips of the cue words corrected ("brigthen" -> "brighten"); other words are left as typed."""

    def fix(m: re.Match[str]) -> str:
        typed = m.group(0)
        low = typed.lower()
        if len(low) < 6 or low in CUE_WORDS:
            return typed
        return next((w for w in sorted(CUE_WORDS) if abs(len(w) - len(low)) <= 1 and _one_slip(low, w)), typed)

    return re.sub(r"[A-Za-z]+", fix, text)


def intent_checks(request: str, valid: ValidProgram, registry: Registry) -> list[CheckResult]:
    """Hard findings where the plan contradicts the request's own words; nothing when the words are unclear."""
    text = spelled(request.strip())
    out: list[CheckResult] = []
    targets = mask_targets(valid)
    edits = edit_nodes(valid, registry)
    tools = {valid.program.node(n).tool for n in edits}

    def res(check: str, node: str, ok: bool, advice: str, fix: Fix | None = None) -> CheckResult:
        tool = valid.program.node(node).tool if node else ""
        return CheckResult(
            check=check, kind="intent", node=node, tool=tool, value=float(not ok), threshold=0.0, passed=ok, advice=advice, fix=fix
        )

    scope = KEEP_ALONE.sub(" ", text)
    subject = "person" if PERSON_WORDS.search(scope) else "subject"
    splash = KEEP_COLOUR.search(scope) if GREY.search(scope) else None  # "black and white but keep the cup red"
    if splash and not PERSON_WORDS.search(splash.group("noun")):
        subject = f"{splash.group('colour').lower()} {splash.group('noun').lower()}"
    # scope: "except / behind / background / keep X in colour" wants the edit outside the subject
    unmasked: list[CheckResult] = []  # judged last: masking a step the request does not ask for fixes nothing
    if OUTSIDE.search(scope) or splash:
        masked = [
            (n, t)
            for n in edits
            if (t := _mask_target(valid, n, targets)) is not None and valid.program.node(n).tool != "replace_background"
        ]
        wrong = [(n, t) for n, t in masked if _inside_subject(t)]
        if masked and len(wrong) == len(masked):
            n, t = wrong[0]
            out.append(
                res(
                    "edit is outside the subject",
                    n,
                    False,
                    f"the request edits what is around or except the subject, but {n!r} edits the {t} itself: invert the mask",
                    Fix(invert_mask=True),
                )
            )
        elif masked:
            out.append(res("edit is outside the subject", masked[0][0], True, ""))
        elif not any(valid.program.node(n).args.get("mask") is not None for n in edits):
            # no edit is masked at all: the first one that takes a mask gets "everything except the subject"
            n = next((n for n in edits if "mask" in registry.get(valid.program.node(n).tool).inputs), "")
            if n and valid.program.node(n).tool not in ("replace_background", "remove", "replace", "insert", "edit"):
                unmasked.append(
                    res(
                        "edit is outside the subject",
                        n,
                        False,
                        f"the request edits what is around or except the subject, but {n!r} edits the whole picture: "
                        f"mask it to everything except the {subject}",
                        Fix(mask=f"not {subject}"),
                    )
                )
    # a global grey-out when only the rest should lose colour is also a scope error
    if SELECTIVE_COLOUR.search(text) or splash:
        for n in edits:
            node = valid.program.node(n)
            if node.tool == "adjust" and float(node.args.get("saturation", 0) or 0) < 0 and _mask_target(valid, n, targets) is None:
                out.append(
                    res(
                        "colour kept where asked",
                        n,
                        False,
                        f"the request keeps something in colour but {n!r} greys the whole picture: "
                        "mask it to everything except the subject",
                        Fix(mask=f"not {subject}"),
                    )
                )
    # direction of the tone words
    for pattern, opposite, arg, sign, words in (
        (BRIGHTER, DARKER, "brightness", 1, "brighter"),
        (DARKER, BRIGHTER, "brightness", -1, "darker"),
        (WARMER, COOLER, "warmth", 1, "warmer"),
        (COOLER, WARMER, "warmth", -1, "cooler"),
        (GREY, VIVID, "saturation", -1, "less colourful"),
        (VIVID, GREY, "saturation", 1, "more colourful"),
    ):
        (said, unsaid), (other, other_unsaid) = _says(pattern, text), _says(opposite, text)
        if not (said or other_unsaid) or other or unsaid:  # "less vivid" is the opposite of "vivid"
            continue
        for n in edits:
            node = valid.program.node(n)
            value = float(node.args.get(arg, 0) or 0) if node.tool == "adjust" else 0.0
            if value * sign < 0:
                out.append(
                    res(
                        f"{arg} direction",
                        n,
                        False,
                        f"the request asks for {words} but {n!r} sets {arg} {value:g}: flip its sign",
                        Fix(args={arg: -value}),
                    )
                )
    # turning direction: rotate's degrees are counter-clockwise
    low = text.lower()
    turn = -1 if re.search(r"(?<!counter[- ])(?<!anti[- ])\bclockwise\b|\bto the right\b|\bturn(?:ed)? (?:it )?right\b", low) else 0
    if re.search(r"counter[- ]?clockwise|anti[- ]?clockwise|\bto the left\b|\bturn(?:ed)? (?:it )?left\b", low):
        turn = 1 if turn == 0 else 0
    for n in edits:
        node = valid.program.node(n)
        degrees = float(node.args.get("degrees", 0) or 0) if node.tool == "rotate" else 0.0
        if turn and degrees * turn < 0 and abs(degrees) != 180:
            way = "clockwise" if turn < 0 else "counter-clockwise"
            out.append(
                res(
                    "rotate direction",
                    n,
                    False,
                    f"the request turns {way} but {n!r} turns the other way (degrees {degrees:g}): flip its sign",
                    Fix(args={"degrees": -int(degrees) if degrees.is_integer() else -degrees}),
                )
            )
    # the opposite verb: "remove the blur" planned as a blur
    if NEGATED_BLUR.search(text) and "blur" in tools:
        n = next(n for n in edits if valid.program.node(n).tool == "blur")
        swap = Fix(tool="sharpen") if "sharpen" in registry else None
        out.append(
            res(
                "no blur when unblurring",
                n,
                False,
                "the request asks to remove blur or sharpen, but the plan blurs: use sharpen (or enhance) instead of blur",
                swap,
            )
        )
    # a clause with no step: append it, or (when no step of the plan answers any clause) plan just the missing steps
    missing, explained = [], set()
    for clause, (pattern, can_do) in CLAUSE_RES.items():
        if clause == "blur" and NEGATED_BLUR.search(text):
            continue
        if clause == "text" and REMOVING.search(text):  # "remove the watermark": the words go, none are added
            continue
        m = next((m for m in pattern.finditer(text) if not NEGATOR.search(text[: m.start()])), None)  # "dont blur the cup" asks no blur
        if not m:
            continue
        explained.update(can_do)
        if not tools.intersection(can_do) and any(t in registry for t in can_do):
            missing.append((clause, m.group(0), can_do))
    if missing:
        steps, planned = [], set(tools)
        for clause, _, can_do in missing:
            if planned.intersection(can_do):  # an earlier added step answers this clause too ("flip it upside down")
                continue
            step = step_for(clause, text, registry) if clause != "tone" else _tone_step(text, valid, edits)
            steps.append(step)
            planned.add(step["tool"] if step else clause)
        fix = None
        if all(steps):
            unexplained = not tools.intersection(explained) and not any("mask" in st["args"] for st in steps if st)  # keep what it masks
            fix = Fix(replace=steps) if unexplained else Fix(append=steps)  # type: ignore[arg-type]
        for i, (_, word, can_do) in enumerate(missing):
            out.append(
                res(
                    f"clause '{word.lower()}' planned",
                    "",
                    False,
                    f"the request says '{word}' but no step does it: add a {can_do[0]} step",
                    fix if i == 0 else None,
                )
            )
    if not missing:
        out += unmasked
    # reversed scope the other way: "make him warmer" planned on everything except him
    if not (OUTSIDE.search(scope) or splash) and SUBJECT.search(scope):
        for n in edits:
            t = _mask_target(valid, n, targets)
            if t and t.startswith("not ") and valid.program.node(n).tool != "replace_background":
                out.append(
                    res(
                        "edit is on the subject",
                        n,
                        False,
                        f"the request edits the subject itself, but {n!r} edits everything except the {t[4:]}: invert the mask",
                        Fix(invert_mask=True),
                    )
                )
    for extra in (_sign_words, _geometry_words, _grey_words, _paint_words, _part_words, _stated_args, _unasked_steps, _to_colour,
                  _softened_sharpen, _named_style, _left_alone):
        out += extra(text, valid, registry, edits, targets, out)
    return out


Found = list[CheckResult]


def _finding(valid: ValidProgram, check: str, node: str, advice: str, fix: Fix | None) -> CheckResult:
    tool = valid.program.node(node).tool if node else ""
    return CheckResult(check=check, kind="intent", node=node, tool=tool, value=1.0, threshold=0.0, passed=False, advice=advice, fix=fix)


def _arg(valid: ValidProgram, nid: str, name: str) -> float:
    node = valid.program.node(nid)
    return float(node.args.get(name, 0) or 0) if node.tool == "adjust" else 0.0


def _sign_words(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """A statistic named with a word that raises or lowers it ("less contrast", "contrast -1", "boost the saturation")."""
    out: Found = []
    adjusts = [n for n in edits if valid.program.node(n).tool == "adjust"]
    judged = {r.check for r in found}
    text = re.sub(r"\bmore or less\b", "", text, flags=re.I)  # an idiom, not a direction
    for stat in STAT_NAMES:
        up, down = SIGNED[(stat, True)].search(text), SIGNED[(stat, False)].search(text)
        if bool(up) == bool(down) or not adjusts or f"{stat} direction" in judged:
            continue
        sign, said = (1, up) if up else (-1, down)
        assert said is not None
        for n in adjusts:
            value = _arg(valid, n, stat)
            if value * sign < 0:
                out.append(
                    _finding(
                        valid,
                        f"{stat} direction",
                        n,
                        f"the request says '{said.group(0)}' but {n!r} sets {stat} {value:g}: flip its sign",
                        Fix(args={stat: -value}),
                    )
                )
        lit = stat == "shadows" and any(_arg(valid, n, "brightness") > 0 for n in adjusts)  # brightening lifts the shadows too
        if not out and not lit and all(_arg(valid, n, stat) == 0 for n in adjusts):
            n = adjusts[-1]
            out.append(
                _finding(
                    valid,
                    f"{stat} direction",
                    n,
                    f"the request says '{said.group(0)}' but no step changes {stat}: set {stat} on {n!r}",
                    Fix(args={stat: 0.5 * sign}),
                )
            )
    return out


def _geometry_words(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """ "Upside down" (no flip word) is a half turn, not a mirror; "flip / mirror" (no turn word) is a mirror, not a turn."""
    out: Found = []
    upside, mirror, turn = UPSIDE_DOWN.search(text), MIRROR.search(text), TURN.search(text)
    vertical = bool(upside or re.search(r"vertical|top to bottom|bottom to top", text, re.I))
    sideways = bool(re.search(r"horizontal|left to right|right to left|sideways|side to side", text, re.I))
    axis = ("vertical" if vertical else "horizontal") if vertical != sideways and (mirror or upside) else ""
    for n in edits:
        node = valid.program.node(n)
        degrees = float(node.args.get("degrees", 0) or 0) if node.tool == "rotate" else 0.0
        if upside and not mirror and node.tool == "flip" and "rotate" in registry:
            out.append(
                _finding(
                    valid,
                    "upside down is a half turn",
                    n,
                    f"'upside down' is a half turn but {n!r} mirrors the picture: rotate 180 degrees instead",
                    Fix(tool="rotate", args={"degrees": 180}),
                )
            )
        elif upside and not mirror and node.tool == "rotate" and abs(degrees) != 180:
            out.append(
                _finding(
                    valid,
                    "upside down is a half turn",
                    n,
                    f"'upside down' is a half turn but {n!r} turns {degrees:g} degrees: rotate 180",
                    Fix(args={"degrees": 180}),
                )
            )
        elif node.tool == "flip" and axis and str(node.args.get("direction", "horizontal")) != axis:
            out.append(
                _finding(valid, "flip axis", n, f"the request flips {axis}ly but {n!r} flips the other way", Fix(args={"direction": axis}))
            )
        elif mirror and not turn and node.tool == "rotate" and "flip" in registry:
            direction = "vertical" if vertical else "horizontal"
            out.append(
                _finding(
                    valid,
                    "a mirror is a flip",
                    n,
                    f"the request says '{mirror.group(0)}' but {n!r} turns the picture: flip it {direction}",
                    Fix(tool="flip", args={"direction": direction}),
                )
            )
    return out


def _grey_words(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """ "Black and white" with no step that removes colour; a pencil / charcoal drawing is grey (the catalogue's "pencil" style;
    its "sketch" is coloured pencil)."""
    out: Found = []
    grey = GREY.search(text)
    greys = [n for n in edits if _arg(valid, n, "saturation") < 0 or valid.program.node(n).tool in ("stylize", "recolor")]
    adjusts = [n for n in edits if valid.program.node(n).tool == "adjust"]
    if grey and not VIVID.search(text) and not greys and adjusts and "saturation direction" not in {r.check for r in found}:
        amount = -0.5 if grey.group(0).lower().startswith("desaturat") else -1.0  # "black and white" is all the way
        n = adjusts[-1]
        out.append(
            _finding(
                valid,
                "colour removed",
                n,
                f"the request says '{grey.group(0)}' but no step removes colour: set saturation {amount:g} on {n!r}",
                Fix(args={"saturation": amount}),
            )
        )
    if NOT_GREY.search(text):  # "half, not full black and white": a step that takes all the colour out goes too far
        for n in edits:
            if valid.program.node(n).tool == "adjust" and _arg(valid, n, "saturation") <= -0.95:
                advice = f"the request says '{NOT_GREY.search(text).group(0)}' but {n!r} takes all the colour out: set saturation -0.5"  # type: ignore[union-attr]
                out.append(_finding(valid, "not all the way to grey", n, advice, Fix(args={"saturation": -0.5})))
    drawing = GREY_DRAWING.search(text)
    if not drawing:
        return out
    for n in edits:
        node = valid.program.node(n)
        style = re.sub(r"[\s_-]+", " ", str(node.args.get("style", "")).strip().lower()) if node.tool == "stylize" else ""
        if node.tool == "stylize" and style not in ("pencil", "pencil style"):
            out.append(
                _finding(
                    valid,
                    "grey drawing style",
                    n,
                    f"a {drawing.group(0)} drawing is grey, but {n!r} uses the style {style!r}: use the style 'pencil'",
                    Fix(args={"style": "pencil"}),
                )
            )
    return out


def _paint_words(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """ "Make the sky blue", "turn the background white": a colour given to a region is a recolor (or a new background), not a tone."""
    m = PAINT.search(text)
    tools = {valid.program.node(n).tool for n in edits}
    if not m or tools & {"recolor", "replace_background", "replace", "edit", "insert", "stylize"}:
        return []
    noun, colour = m.group("noun").lower(), m.group("colour").lower()
    if noun in GLOBAL_NOUNS or noun.split()[-1] in GLOBAL_NOUNS:
        return []
    backdrop = noun in BACKGROUND_NOUNS
    tool = "replace_background" if backdrop else "recolor"
    if tool not in registry:
        return []
    for n in edits:
        t = _mask_target(valid, n, targets)
        if valid.program.node(n).tool != "adjust" or not t:
            continue
        if backdrop and not (t.startswith("not ") or any(w in t for w in BACKGROUND_NOUNS)):
            continue
        if not backdrop and noun.split()[-1] not in t:
            continue
        return [
            _finding(
                valid,
                "a colour is a recolor",
                n,
                f"the request makes the {noun} {colour}, but {n!r} only changes its tone: use {tool} with color {colour!r}",
                Fix(tool=tool, args={"color": colour}, invert_mask=backdrop),
            )
        ]
    return []


REMOVING = re.compile(r"\b(remove|erase|get rid of|delete|take out|clean up|clear)\b", re.I)
# every way a request asks for something to go: a `remove` step with none of these words takes out what was not asked
ASKS_REMOVAL = re.compile(
    r"\b(remov\w*|eras\w*|get rid|rid of|delet\w*|take (?:out|away)|clean(?:ed)? up|clear\w*|without|lose|ditch|no more|nuke|zap|scrub|"
    r"disappear|vanish|hide|cut out|wipe|retouch out|out of (?:the )?(?:shot|picture|photo|frame)|gone|fill (?:in|the hole)|blemish\w*|"
    r"spots?|pimples?|acne|scratch\w*|dust|watermark|photobomb\w*|unwanted|distracting)\b",
    re.I,
)


ASKS_BACKDROP = re.compile(
    r"\b(background|backdrop|bg|backgound|behind|surroundings|scene|setting|studio|passport|cut ?out|"
    r"(?:put|place|move|take) (?:him|her|me|them|it|us|this|the \w+) (?:on|in|into|against|at|to)|"
    r"on (?:a |an )?(?:plain |solid |pure )?(?:white|black|grey|gray|blue|green|transparent))\b",
    re.I,
)


# every way a request asks for a new look (besides naming a style the catalogue has, see _unasked_steps)
ASKS_STYLE = re.compile(
    r"\b(styl\w*|look(?:s|ing)? like|as if|painting|paint(?:ed)?|drawing|drawn|draw|sketch\w*|cartoon\w*|comic\w*|anime|manga|"
    r"art\w*|watercolou?r|oil|pencil|charcoal|crayon|poster\w*|mosaic|filter|vintage|retro|sepia|impressionis\w*|cubis\w*|"
    r"van gogh|monet|picasso|munch|hokusai|ukiyo|stained glass|pixel\w*|neon|noir|illustrat\w*|render\w*|version of|vibe|aesthetic)\b",
    re.I,
)

# destructive steps a request must ask for: (tool, the words that ask, check, what the step does, flag a plan that is only this)
UNASKED = (
    ("remove", ASKS_REMOVAL, "removal not asked", "removes something", True),
    ("replace_background", ASKS_BACKDROP, "backdrop not asked", "replaces the background", False),
    ("stylize", ASKS_STYLE, "style not asked", "repaints the picture in a style", False),
)


def _unasked_steps(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """A destructive step the request never asks for: "black and white except the red bike" planned with a `remove` of the bike,
    "make the sky purple-ish, leave the buildings" with a backdrop swap. Fix: drop the step (a re-plan when it is the whole plan)."""
    out: Found = []
    unquoted = QUOTED.sub(" ", text).lower()  # a caption's words ask for no edit: "add 'Grace Hopper' at the bottom"
    for tool, asks, check, does, whole_plan_too in UNASKED:
        steps = [n for n in edits if valid.program.node(n).tool == tool]
        if tool == "stylize":  # a style the request names asks for itself
            steps = [n for n in steps if not _style_said(str(valid.program.node(n).args.get("style", "")), unquoted, registry)]
        if not steps or asks.search(unquoted) or (len(steps) == len(edits) and not whole_plan_too):
            continue
        fix = Fix(drop=True) if len(steps) < len(edits) else None
        out += [_finding(valid, check, n, f"the request does not ask for it, but {n!r} {does}: drop that step", fix) for n in steps]
    return out


# "dont touch the green background", "leave her face alone": a part the request keeps as it is
LEFT_ALONE = re.compile(
    r"\b(?:leave|don'?t touch|do not touch|dont touch|without touching|not touching|keep)\s+(?:the\s+|her\s+|his\s+|my\s+|their\s+)?"
    r"(?:[a-z]+\s+){0,2}?(?P<part>background|backdrop|bg|sky|face)\b"
    r"(?P<alone>\s+(?:alone|as (?:it )?is|untouched|unchanged|the same|intact))?",
    re.I,
)


def _left_alone(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """A step masked to the part the request leaves alone ("make the flower pop but dont touch the green background" planned
    with a brightening of the background). Fix: drop the step (a re-plan when it is the whole plan)."""
    out: Found = []
    for m in LEFT_ALONE.finditer(text):
        if m.group(0).lower().startswith(("keep", "leave")) and not m.group("alone"):
            continue  # "keep the background blurry", "leave the sky blue" say how, not that it stays as it is
        part = {"backdrop": "background", "bg": "background"}.get(m.group("part").lower(), m.group("part").lower())
        for n in edits:
            node = valid.program.node(n)
            t = _mask_target(valid, n, targets)
            on_part = t is not None and (t == part or (part == "background" and t.startswith("not ")))
            if on_part and node.tool not in ("replace_background", "remove", "replace", "insert"):
                fix = Fix(drop=True) if len(edits) > 1 else None
                out.append(_finding(valid, "edit on what is left alone", n, f"the request says '{m.group(0)}' but {n!r} "
                                    f"edits the {part}: drop that step", fix))  # fmt: skip
    return out


def _style_said(style: str, low: str, registry: Registry) -> bool:
    """Whether the request names this style, or any style the catalogue has by name ("make it starry night")."""
    names = registry.get("stylize").args_schema()["properties"]["style"].get("examples", []) if "stylize" in registry else []
    words = [w for w in re.split(r"[\s_-]+", style.lower()) if len(w) > 2]
    return bool(words and all(re.search(rf"\b{re.escape(w)}\b", low) for w in words)) or any(
        len(name) >= 4 and re.search(rf"\b{re.escape(name.lower())}\b", low) for name in names
    )


SHARPEN_WORDS = re.compile(r"\b(sharpen\w*|sharper|crisper|crisp(?:en)? up|more detail|in focus|deblur|unblur)\b", re.I)
SOFTENING = ("retouch", "blur", "denoise")


def _softened_sharpen(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """ "Sharpen her face" planned as a skin retouch (or a blur): the opposite. Swap it for `sharpen` on the part named."""
    if not SHARPEN_WORDS.search(text) or (NEGATED_BLUR.search(text) and "blur" in {valid.program.node(n).tool for n in edits}):
        return []  # no sharpening asked, or the "no blur when unblurring" check already swaps the blur
    if any(valid.program.node(n).tool in ("sharpen", "enhance", "upscale") for n in edits) or "sharpen" not in registry:
        return []
    parts = [(m.group("part") or m.group("face")).lower() for m in PART.finditer(text) if not KEEPING.search(text[: m.start()])]
    for n in edits:
        node = valid.program.node(n)
        if node.tool in SOFTENING:
            mask = None if node.args.get("mask") is not None or not parts else parts[0]
            advice = f"the request sharpens, but {n!r} softens ({node.tool}): use sharpen"
            return [_finding(valid, "no softening when sharpening", n, advice, Fix(tool="sharpen", mask=mask))]
    return []


def _named_style(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """A look the catalogue has by name ("sepia pls") planned as plain tone changes: use the style."""
    if "stylize" not in registry or not edits:
        return []
    nodes = [valid.program.node(n) for n in edits]
    if any(n.tool != "adjust" or n.args.get("mask") is not None for n in nodes):
        return []
    names = registry.get("stylize").args_schema()["properties"]["style"].get("examples", [])
    low = text.lower()
    said = [name for name in names if len(name) >= 5 and re.search(rf"\b{re.escape(name)}\b", low) and name not in ("pencil", "sketch")]
    if len(said) != 1:
        return []
    return [_finding(valid, "a named style", edits[0], f"the request names the style {said[0]!r}, but the plan only changes tones: "
                     f"use stylize with style {said[0]!r}", Fix(tool="stylize", args={"style": said[0]}))]


TO_COLOUR = re.compile(rf"\b(?:to|into|->|→)\s+(?:a\s+|an\s+)?(?:(?:{SHADES})\s+)?(?P<colour>{'|'.join(PAINT_COLOURS)})\b", re.I)
PAINTING_TOOLS = ("recolor", "replace_background")


def _to_colour(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """From/to colours: "make the blue behind her green", "the car from red to blue" paint the colour it goes TO (the one
    after "to", else the last one said), never the one it comes from. And a backdrop "prompt" that is only a colour
    ("plain white") is that colour: a prompt needs the diffusion backbone."""
    colours = "|".join(PAINT_COLOURS)
    instead = rf"\binstead of (?:the |a |an |that )?(?:\w+ )?(?:{colours})\b"  # "red instead of brown": brown is where it starts
    low = re.sub(instead, " ", GREY.sub(" ", text.lower()))
    out = []
    for n in edits:
        node = valid.program.node(n)
        prompt = re.findall(r"[a-z]+", str(node.args.get("prompt") or "").lower())
        plain = [w for w in prompt if w not in (*SHADES.split("|"), "a", "an", "background", "backdrop", "colour", "color")]
        if node.tool == "replace_background" and not node.args.get("color") and len(plain) == 1 and plain[0] in PAINT_COLOURS:
            out.append(_finding(valid, "a colour is a color", n, f"{n!r} asks for a {' '.join(prompt)!r} prompt, which needs the diffusion "
                                f"backbone; a plain colour is color {plain[0]!r}", Fix(args={"color": plain[0], "prompt": None})))
            continue
        colour = str(node.args.get("color", "")).lower().split()
        if node.args.get("color2"):  # a gradient uses both colours said
            continue
        elsewhere = {str(o.args.get(k, "")).lower().split()[-1] for o in valid.program.nodes if o.id != n for k in ("color", "color2")
                     if str(o.args.get(k, "")).strip()}  # "... and a grey border": another step's colour
        said = [c for c in re.findall(rf"\b({colours})\b", low) if c not in elsewhere]
        if len(set(said)) < 2:
            continue
        m = TO_COLOUR.search(low)
        goes_to = m.group("colour") if m and m.group("colour") in said else said[-1]
        if node.tool in PAINTING_TOOLS and colour and colour[-1] in said and colour[-1] != goes_to:
            out.append(_finding(valid, "colour goes to", n, f"the request turns the {colour[-1]} into {goes_to}, but {n!r} paints "
                                f"{colour[-1]}: use color {goes_to!r}", Fix(args={"color": goes_to})))
    return out
KEEPING = re.compile(
    r"\b(keep|keeping|leave|leaving|preserve|protect|don'?t (?:touch|change)|without (?:touching|changing)|make sure)\b[^,.;]*$", re.I
)
PART = re.compile(  # a possessive says whose part it is; "the" only for the face ("hurts the eyes" is no edit target)
    r"\b(?:(?:her|his|my|their|your|its|our)\s+(?P<part>face|hair|skin|eyes|lips|teeth|eyebrows)|the\s+(?P<face>face))\b", re.I
)
GENERATIVE = ("replace_background", "remove", "replace", "insert", "edit", "retouch")  # these find their own region
PERSON_TARGETS = ("person", "people", "man", "woman", "subject", "her", "him")


def _part_words(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """ "Brighten her face" planned on the whole person: the segment should find the part named."""
    parts = {
        (m.group("part") or m.group("face")).lower() for m in PART.finditer(text) if not KEEPING.search(text[: m.start()])
    }  # "keep my face": not the target
    if len(parts) != 1:
        return []
    part = parts.pop()
    for n in edits:
        ref = valid.program.node(n).args.get("mask")
        src = ref_name(ref) if is_ref(ref) else ""
        takes_mask = "mask" in registry.get(valid.program.node(n).tool).inputs and valid.program.node(n).tool not in GENERATIVE
        takes_mask = takes_mask and not any(part in t for t in targets.values())  # a step already finds the part (a crop to the face)
        if (
            ref is None
            and takes_mask
            and not OUTSIDE.search(KEEP_ALONE.sub(" ", text))
            and not re.search(r"\b(whole|entire|everything)\b", text, re.I)
        ):
            return [
                _finding(
                    valid,
                    "the part named is edited",
                    n,
                    f"the request edits {part}, but {n!r} edits the whole picture: mask it to the {part}",
                    Fix(mask=part),
                )
            ]
        while src and valid.program.node(src).tool == "grow" and is_ref(valid.program.node(src).args.get("mask")):
            src = ref_name(valid.program.node(src).args["mask"])
        if not src or valid.program.node(src).tool != "segment":
            continue
        target = str(valid.program.node(src).args.get("target", "")).strip().lower()
        if target in PERSON_TARGETS:
            return [
                _finding(
                    valid,
                    "the part named is edited",
                    src,
                    f"the request edits {part}, but {src!r} selects the whole {target}: segment {part!r}",
                    Fix(args={"target": part}),
                )
            ]
    return []


STATED_CLAUSE = {"border": "border", "add_text": "text", "upscale": "upscale", "crop": "crop"}
DEFAULTS = {("border", "pixels"): 20, ("border", "color"): "white", ("add_text", "position"): "bottom", ("add_text", "color"): "white"}
PLACE_WORDS = re.compile(r"\b(top|bottom|above|below|cent(?:er|re)|middle|left|right)\b", re.I)
FACTOR_WORDS = re.compile(r"\b[234]\s*x\b|\bx\s*[234]\b", re.I)


def _same(a: object, b: object) -> bool:
    norm = lambda v: str(v).strip().lower().replace("gray", "grey")  # noqa: E731
    return norm(a) == norm(b)


def _stated_args(text: str, valid: ValidProgram, registry: Registry, edits: list[str], targets: dict[str, str], found: Found) -> Found:
    """Values the request states exactly (a 30 px white border, 3x, 16:9, a caption's words, place, colour) that a step differs from."""
    out: Found = []
    for n in edits:
        node = valid.program.node(n)
        clause = STATED_CLAUSE.get(node.tool)
        step = step_for(clause, text, registry) if clause else None
        if step is None or step["tool"] != node.tool:
            continue
        stated = dict(step["args"])
        if node.tool == "add_text" and not PLACE_WORDS.search(QUOTED.sub(" ", text)):
            stated.pop("position", None)
        if node.tool == "upscale" and not FACTOR_WORDS.search(text):
            stated.pop("factor", None)
        wrong = {k: v for k, v in stated.items() if not _same(node.args.get(k, DEFAULTS.get((node.tool, k))), v)}
        if wrong:
            said = ", ".join(f"{k} {v}" for k, v in wrong.items())
            out.append(_finding(valid, "stated values kept", n, f"the request states {said} but {n!r} differs: use them", Fix(args=wrong)))
    return out
