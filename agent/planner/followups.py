"""Follow-up turns: revise the previous turn's program instead of planning from scratch.

A chat turn after the first is classified by a table of rules (regular expressions,
first match wins) into one typed operation; each operation is a small rewrite of the
previous program in its steps form (agent/surface.py):

- ``undo`` / ``redo``: session commands (the caller moves the cursor);
- ``scale``: "stronger", "a bit less": multiply the last edit's amount args by a factor;
- ``also``: "also the sky": the last edit again, on a new target, appended;
- ``retarget``: "no, I meant the background": the last edit's mask chain replaced;
- ``instead``: "make it purple instead": swap the last edit's value, or replace the edit;
- ``append``: "and crop it square": the planner plans the new clause, appended.

Only ``instead`` (when its value is not a colour) and ``append`` call the planner, and
only on the new clause, so the existing single-turn adapter serves multi-turn chat.
The conventions are those of /work/notes/multiturn-format.md (the blind set's rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from banana.agent.program import Program
from banana.agent.surface import parse_steps, to_steps
from banana.tools.registry import Registry


class Op(StrEnum):
    UNDO = "undo"
    REDO = "redo"
    SCALE = "scale"
    ALSO = "also"
    RETARGET = "retarget"
    INSTEAD = "instead"
    APPEND = "append"


@dataclass(frozen=True)
class Rule:
    op: Op
    pattern: re.Pattern[str]
    factor: float | None = None


@dataclass(frozen=True)
class FollowUp:
    """A classified follow-up: the operation, its factor (scale) and the rest of the text (target or clause)."""

    op: Op
    text: str
    rest: str = ""
    factor: float | None = None


class FollowUpError(ValueError):
    """A follow-up that does not apply to the previous program (e.g. "stronger" after a crop)."""


EFFECT = r"(?:blur|blurring|brightness|contrast|saturation|warmth|effect|colou?r|tone|filter|style|edit)"
EFFECT_VERB = r"(?:blur|brighten|darken|warm|cool|saturate|desaturate|lighten|soften|push|turn (?:it|that) (?:up|down))"


def _scale(core: str) -> str:
    return (rf"(?:(?:that's |it's )?too (?:much|strong|weak|little)[,.!]?\s+)?"
            rf"(?:make it |make that |make the {EFFECT} |go |do it |a |{EFFECT_VERB} (?:it |that )?)?(?:{core})"
            rf"(?: {EFFECT})?(?: than that| than before| please| pls)?")


BIT = r"(?:a bit|a little|a little bit|slightly|a touch|a tad|just a bit)"
UP = r"(?:stronger|more|harder|more intense|more strongly)"
DOWN = r"(?:weaker|less|softer|less intense|more subtle|subtler)"
LOTS = r"(?:much|way|a lot|far|lots)"
NO = r"(?:(?:no|nope|nah|actually|sorry|oops|hmm|wait|no wait|wrong (?:one|thing|object|part|spot))[,.!]?\s+)*"

# The rewrite rules, as data: (operation, pattern on the normalised text, factor). First match wins.
RULES: tuple[Rule, ...] = tuple(Rule(op, re.compile(p), f) for op, p, f in [
    (Op.UNDO, NO + r"(?:undo(?: that| it| this| the last (?:one|edit|step|change))?|go back|revert(?: that| it)?|"
              r"never ?mind(?: that)?|take (?:that|it) back|put it back|go back (?:one step|a step|to before)|back to before|"
              r"scratch that|forget (?:that|it)|cancel that|revert (?:the )?last (?:one|edit|step|change))", None),
    (Op.REDO, r"redo(?: that| it)?|bring it back|do it again", None),
    (Op.SCALE, _scale(rf"{LOTS} {UP}|double it|double that|twice as (?:strong|much)"), 2.0),
    (Op.SCALE, _scale(rf"{BIT} {UP}|{UP} {BIT}"), 1.25),
    (Op.SCALE, _scale(rf"{BIT} {DOWN}|{DOWN} {BIT}|tone it down a (?:bit|little|touch)"), 0.75),
    (Op.SCALE, _scale(rf"{LOTS} {DOWN}"), 0.25),
    (Op.SCALE, _scale(rf"{DOWN}|tone it down|reduce it|halve it|half as (?:strong|much)|not so (?:strong|much)|too much"), 0.5),
    (Op.SCALE, _scale(rf"{UP}|even {UP}|increase it|intensify it|not enough|stronger still"), 1.5),
    (Op.RETARGET, NO + r"(?:i meant|i mean|meant|i said)\s+(?P<rest>.+)", None),
    (Op.RETARGET, NO + r"not (?:on )?(?:the |that |this |my )?[\w ]+?(?:,\s*|\s+but\s+)(?:on |but )?(?P<rest>.+)", None),
    (Op.RETARGET, NO + r"(?:on )?(?P<rest>(?:the|my|his|her|their|our) [\w ]+?),? not (?:on )?(?:the |that |this |my )?[\w ]+", None),
    (Op.INSTEAD, NO + r"instead of [^,]+,\s*(?P<rest>.+)", None),
    (Op.INSTEAD, NO + r"(?P<rest>.+?) rather than .+", None),
    (Op.INSTEAD, NO + r"(?P<rest>.+?),?\s+instead(?: of that)?", None),
    (Op.INSTEAD, NO + r"instead,?\s+(?P<rest>.+)", None),
    (Op.ALSO, r"(?:and |also |now )?(?:do the same (?:for|with|to|on)|same (?:for|with|to|on)|do|apply (?:it|that) to|"
              r"(?:and )?(?:to|on)) (?P<rest>(?:the|my|his|her|their|our) .+?)(?: too| as well| also)?", None),
    (Op.ALSO, r"(?:and |also |and also |plus )?(?P<rest>.+?)(?: too| as well| also)", None),
    (Op.ALSO, r"(?:also|and also|and|plus|now)\s+(?P<rest>.+)", None),
])

# "also X" / "X too" with a verb is a new edit, not a re-target: these words start a clause.
VERBS = frozenset("""make turn blur remove erase delete crop upscale enlarge brighten darken lighten recolor recolour color colour
change replace swap add apply stylize stylise sharpen warm cool increase decrease reduce boost desaturate saturate convert
paint fix clean hide anonymize anonymise put give set zoom cut trim get render restore refine finalize finalise tint
mute fade lock keep give transform draw upsample improve enhance bump drop raise lower""".split())
DETERMINERS = ("the ", "that ", "this ", "those ", "these ", "my ", "his ", "her ", "their ", "our ", "your ", "its ")
PEOPLE_WORDS = frozenset("""me him her them us myself person people man woman men women guy girl boy kid kids child lady dude
bride groom couple family model astronaut friend wife husband son daughter mom dad mother father player subject
girlfriend boyfriend""".split())
BACKGROUND_WORDS = frozenset({"background", "backdrop", "bg", "back ground"})
FILLER = re.compile(r"^(?:ok(?:ay)?|hmm|right|great|nice|cool|good|perfect|thanks|yes|yeah|please|pls|can you|could you|"
                    r"would you|could you please|can you please|i want it|i'd like it|let's|lets)[,.!]?\s+")
POLITE = re.compile(r"(?:[,.!?\s]+(?:please|pls|plz|thanks|thank you|thx|:\)))+$|[.!?]+$")

# Args that say "how much": scaled by "stronger" / "weaker" (bounds come from the tool's schema).
AMOUNT_ARGS = ("amount", "strength", "brightness", "contrast", "saturation", "warmth")
# Args that say "what": swapped by "X instead" when X is of the same kind.
VALUE_ARGS = ("color", "color2", "style", "prompt", "file", "aspect", "factor")


def normalise(text: str) -> str:
    t = " ".join(text.lower().strip().split())
    t = POLITE.sub("", t).strip()
    for _ in range(3):
        t = FILLER.sub("", t)
    return t.strip(" ,.!")


def classify(text: str) -> FollowUp:
    """The follow-up operation for a turn's text (``append`` when no rule matches)."""
    t = normalise(text)
    for rule in RULES:
        m = rule.pattern.fullmatch(t)
        if m is None:
            continue
        rest = (m.groupdict().get("rest") or "").strip(" ,")
        if rule.op is Op.ALSO and not is_target(rest):
            return FollowUp(Op.APPEND, text, rest=_strip_connective(rest))
        return FollowUp(rule.op, text, rest=rest, factor=rule.factor)
    return FollowUp(Op.APPEND, text, rest=_strip_connective(t))


def _strip_connective(t: str) -> str:
    return re.sub(r"^(?:and then|and also|and|also|then|next|plus|after that)[,]?\s+", "", t)


def is_target(phrase: str) -> bool:
    """A noun phrase without a verb ("the sky", "her hair", "the red car"), not a clause."""
    words = phrase.split()
    if not words or len(words) > 5 or any(w in VERBS for w in words):
        return False
    return phrase.startswith(DETERMINERS) or words[0] in PEOPLE_WORDS or len(words) <= 3


def target_of(phrase: str) -> str:
    """The segment target for a noun phrase: determiners dropped; people -> "person"."""
    words = phrase.lower().split()
    while words and (words[0] + " ") in (*DETERMINERS, "a ", "an "):
        words = words[1:]
    noun = " ".join(words)
    if not words or noun in PEOPLE_WORDS or (len(words) == 1 and words[0] in PEOPLE_WORDS):
        return "person"
    return noun


# ---------------------------------------------------------------- steps


@dataclass
class Step:
    tool: str
    args: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        vals = " ".join(f"{k}={json.dumps(round(v, 3) if isinstance(v, float) else v)}" for k, v in self.args.items())
        return f"{self.tool} {vals}".strip()


def steps_of(program: Program | dict[str, Any], registry: Registry) -> list[Step]:
    """The program as steps (ValueError when its shape has no steps form)."""
    prog = parse_steps(to_steps(program, registry), registry)
    return [Step(n.tool, {k: v for k, v in n.args.items() if k in registry.get(n.tool).arg_names}) for n in prog.nodes]


def program_of(steps: list[Step], registry: Registry) -> Program:
    return parse_steps("\n".join(s.line() for s in steps), registry)


def _is_edit(step: Step, registry: Registry, need_mask: bool) -> bool:
    spec = registry.get(step.tool)
    if spec.output != "Image":
        return False
    return not need_mask or any(p.type == "Mask" for p in spec.inputs.values())


def _last(steps: list[Step], registry: Registry, pred: Callable[[Step], bool], what: str) -> int:
    for i in range(len(steps) - 1, -1, -1):
        if pred(steps[i]):
            return i
    raise FollowUpError(f"there is no earlier {what} to change; say what to do instead")


def _mask_block(steps: list[Step], i: int, registry: Registry) -> int:
    """Start of the run of mask-making steps just before step i (i itself when there are none)."""
    j = i
    while j > 0 and registry.get(steps[j - 1].tool).output in ("Mask", "Boxes"):
        j -= 1
    return j


def mask_for(phrase: str, old_block: list[Step]) -> list[Step]:
    """Steps that select a noun phrase; "the background" of a person is the inverted person."""
    target = target_of(phrase)
    if target in BACKGROUND_WORDS:
        people = [s for s in old_block if s.tool == "segment" and s.args.get("target") == "person"]
        return [Step("segment", {"target": "person"}), Step("invert")] if people else [Step("segment", {"target": "background"})]
    return [Step("segment", {"target": target})]


def scale(steps: list[Step], factor: float, registry: Registry) -> list[Step]:
    """Multiply the non-zero amount args of the last edit that has any, within the tool's bounds."""

    def has_amount(s: Step) -> bool:
        return any(a in registry.get(s.tool).arg_names for a in AMOUNT_ARGS)

    i = _last(steps, registry, has_amount, "edit with an amount")
    spec = registry.get(steps[i].tool)
    props = spec.args_schema().get("properties", {})
    full = spec.args_model.model_validate(steps[i].args).model_dump()
    args = dict(steps[i].args)
    for name in AMOUNT_ARGS:
        if name not in spec.arg_names or not isinstance(full.get(name), (int, float)) or not full[name]:
            continue
        p = props.get(name, {})
        hi = p.get("maximum", 1.0)
        lo = p.get("minimum", p.get("exclusiveMinimum", 0.0) + 0.01 if "exclusiveMinimum" in p else -hi)
        args[name] = min(hi, max(lo, round_half_up(full[name] * factor)))
    return [*steps[:i], Step(steps[i].tool, args), *steps[i + 1:]]


def round_half_up(x: float) -> float:
    """2 decimals, halves away from zero (0.375 -> 0.38), as people round."""
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def also(steps: list[Step], phrase: str, registry: Registry) -> list[Step]:
    i = _last(steps, registry, lambda s: _is_edit(s, registry, True), "edit")
    block = steps[_mask_block(steps, i, registry):i]
    return [*steps, *mask_for(phrase, block), Step(steps[i].tool, dict(steps[i].args))]


def retarget(steps: list[Step], phrase: str, registry: Registry) -> list[Step]:
    i = _last(steps, registry, lambda s: _is_edit(s, registry, True), "edit")
    j = _mask_block(steps, i, registry)
    return [*steps[:j], *mask_for(phrase, steps[j:i]), *steps[i:]]


def swap_colour(steps: list[Step], phrase: str, registry: Registry) -> list[Step] | None:
    """ "purple instead" after a recolor: the colour swapped; None when the phrase is not a colour."""
    from banana.experts.colors import parse_color

    i = _last(steps, registry, lambda s: _is_edit(s, registry, False), "edit")
    if "color" not in registry.get(steps[i].tool).arg_names:
        return None
    colour = re.sub(r"^(?:make (?:it|them|that|this)|go with|try|use|do|paint it|colou?r it|turn it)\s+", "", phrase)
    colour = re.sub(r"\s+(?:colou?r|one)$", "", colour).strip()
    if re.fullmatch(r"#?[0-9a-f]{6}", colour):
        colour = "#" + colour.lstrip("#").upper()
    try:
        parse_color(colour)
    except ValueError:
        return None
    return [*steps[:i], Step(steps[i].tool, {**steps[i].args, "color": colour}), *steps[i + 1:]]


def instead(steps: list[Step], planned: list[Step], registry: Registry) -> list[Step]:
    """The last edit replaced by a planned one: its value swapped when the tool is the same, else the
    whole edit (keeping the old mask when the new edit names none and takes one)."""
    i = _last(steps, registry, lambda s: _is_edit(s, registry, False), "edit")
    j = _mask_block(steps, i, registry)
    k = _last(planned, registry, lambda s: _is_edit(s, registry, False), "edit")
    new = planned[k]
    if new.tool == steps[i].tool:
        vals = {a: v for a, v in new.args.items() if a in VALUE_ARGS}
        if vals:
            return [*steps[:i], Step(steps[i].tool, {**steps[i].args, **vals}), *steps[i + 1:]]
    takes_mask = any(p.type == "Mask" for p in registry.get(new.tool).inputs.values())
    if takes_mask and _mask_block(planned, k, registry) == k and j < i:
        planned = [*planned[:k], *steps[j:i], *planned[k:]]
    return [*steps[:j], *planned, *steps[i + 1:]]


# ---------------------------------------------------------------- revise


Plan = Callable[[str], Program]


@dataclass
class Revision:
    """What a follow-up did: the operation and the new program (None for undo / redo: the caller moves the cursor)."""

    follow_up: FollowUp
    program: Program | None
    planned: list[str] = field(default_factory=list)  # the clauses sent to the planner


def revise(previous: Program | None, text: str, plan: Plan, registry: Registry) -> Revision:
    """The program after a follow-up turn, from the previous turn's program (None = the picture as opened)."""
    fu = classify(text)
    if fu.op in (Op.UNDO, Op.REDO):
        return Revision(fu, None)
    if previous is None:
        if fu.op is Op.APPEND:
            return Revision(fu, plan(text), [text])
        raise FollowUpError(f"{text!r} changes an earlier edit, but there is none yet; say what to do")
    steps = steps_of(previous, registry)
    planned: list[str] = []

    def plan_steps(clause: str) -> list[Step]:
        planned.append(clause)
        return steps_of(plan(clause), registry)

    if fu.op is Op.SCALE:
        new = scale(steps, fu.factor or 1.0, registry)
    elif fu.op is Op.ALSO:
        new = also(steps, fu.rest, registry)
    elif fu.op is Op.RETARGET:
        new = retarget(steps, fu.rest, registry)
    elif fu.op is Op.INSTEAD:
        swapped = swap_colour(steps, fu.rest, registry)
        if swapped is None:
            clause = fu.rest if fu.rest.split()[0] in VERBS else f"make it {fu.rest}"
            swapped = instead(steps, plan_steps(clause), registry)
        new = swapped
    else:
        new = steps + plan_steps(fu.rest or text)
    return Revision(fu, program_of(new, registry), planned)
