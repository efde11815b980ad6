"""Local fixes for failures whose check carries no :class:`Fix` of its own: a table, failure kind -> rewrite.

A check that knows its repair attaches it (``CheckResult.fix``: flip a sign, invert a mask, swap a
tool, add a step). Some failures can only be repaired with what the request says, which a tool's
check does not see; each row here reads the failing result and the request and proposes
:class:`Fix` es in order of preference. The loop applies the first whose program it has not tried,
validates it like any plan, and reports it as a ``local_fix`` event.

Rows:
- ``unseen object``: segment cannot see an object noun (no open-vocabulary expert). Try ``text`` when the
  request speaks of writing ("the name tag writing on her uniform"), the noun with the colour the request
  gives it ("make the bike blue instead of red" -> "red bike"), then the main object ("subject"), which is
  what a single named object most often is (not for a removal or a repaint: taking out a guessed object is
  worse than saying it was not found; a backdrop swap keeps the subject, so there it is the guess).
- ``colour name``: a colour phrase the colour parser does not know ("deep blue"): the colour word in it.
- ``no person``: the plan segments a person the picture does not have and the request names nobody: the
  main subject (not for a removal or a repaint; a backdrop swap keeps it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from banana.agent.intent import BW_LOOK, PAINT_COLOURS
from banana.agent.program import Program
from banana.tools.checks import CheckResult, Fix

UNSEEN = re.compile(r"no open-vocabulary expert|no model here understands")
TEXT_WORDS = re.compile(r"\b(writing|written|text|words?|letters|lettering|caption|label|name ?tag|signature|watermark|logo text)\b", re.I)
COLOUR_TOOLS = ("recolor", "replace_background", "border", "add_text")  # tools whose `color` is where the request goes, not where it starts


@dataclass(frozen=True)
class FixRow:
    """One failure kind: which failing results it applies to, and the fixes it proposes (best first)."""

    name: str
    applies: Callable[[CheckResult, Program], bool]
    propose: Callable[[str, CheckResult, Program], list[Fix]]


def _segment_failed(result: CheckResult, program: Program) -> bool:
    return result.check == "node ran" and result.tool == "segment" and bool(UNSEEN.search(result.advice))


def _unseen_object(request: str, result: CheckResult, program: Program) -> list[Fix]:
    target = str(program.node(result.node).args.get("target", "")).strip().lower()
    words = re.findall(r"[a-z]+", target)
    if not words or "subject" in words or any(w in PAINT_COLOURS for w in words):
        return []
    goes_to = {w for n in program.nodes if n.tool in COLOUR_TOOLS for k in ("color", "color2", "prompt")
               for w in re.findall(r"[a-z]+", str(n.args.get(k, "")).lower())}  # "plain white" is where the colour goes
    words_said = re.findall(r"[a-z]+", BW_LOOK.sub(" ", request.lower()))
    said = [c for c in words_said if c in PAINT_COLOURS and c not in goes_to]
    fixes = [Fix(args={"target": "text"})] if TEXT_WORDS.search(request) else []  # "the writing on her uniform" is text
    fixes += [Fix(args={"target": f"{said[0]} {words[-1]}"})] if said else []
    users = _users(program, result.node)
    if users & DESTRUCTIVE and users != {"replace_background"}:  # removing or repainting a guessed object is worse than not found
        return fixes
    return [*fixes, Fix(args={"target": "subject"})]  # a backdrop swap keeps the main subject, whatever its name


DESTRUCTIVE = frozenset({"remove", "replace", "insert", "edit", "replace_background"})


def _users(program: Program, nid: str) -> set[str]:
    """The tools that use ``nid``'s output, directly or through other nodes."""
    found, todo, seen = set(), [nid], set()
    while todo:
        ref = f"${todo.pop()}"
        for n in program.nodes:
            if n.id not in seen and any(v == ref or (isinstance(v, list) and ref in v) for v in n.args.values()):
                seen.add(n.id)
                found.add(n.tool)
                todo.append(n.id)
    return found


NO_PERSON = re.compile(r"cannot find '(?:person|people|man|woman|subject's? body)' in this picture")
PERSON_SAID = re.compile(
    r"\b(him|her|he|she|his|hers|person|people|man|woman|men|women|guy|girl|boy|lady|kid|child|me|face|portrait)\b", re.I
)


def _person_failed(result: CheckResult, program: Program) -> bool:
    return result.check == "node ran" and result.tool == "segment" and bool(NO_PERSON.search(result.advice))


def _no_person(request: str, result: CheckResult, program: Program) -> list[Fix]:
    """The plan assumed a person the picture does not have, and the request never named one ("make the background
    black and white" on a flower): the main subject is what stands in front of the background."""
    users = _users(program, result.node)
    if PERSON_SAID.search(request) or (users & DESTRUCTIVE and users != {"replace_background"}):  # a backdrop swap keeps it
        return []
    return [Fix(args={"target": "subject"})]


UNKNOWN_COLOUR = re.compile(r"unknown colour '([^']+)'")


def _colour_failed(result: CheckResult, program: Program) -> bool:
    return result.check == "node ran" and bool(UNKNOWN_COLOUR.search(result.advice))


def _known_colour(request: str, result: CheckResult, program: Program) -> list[Fix]:
    """ "deep blue", "a nice warm red": the colour word inside the phrase (the planner copies the user's adjectives)."""
    m = UNKNOWN_COLOUR.search(result.advice)
    assert m is not None
    phrase = m.group(1)
    known = [w for w in re.findall(r"[a-z]+", phrase.lower()) if w in PAINT_COLOURS]
    args = program.node(result.node).args
    return [Fix(args={k: known[-1]}) for k in ("color", "color2") if known and args.get(k) == phrase][:1]


ROWS: tuple[FixRow, ...] = (
    FixRow("unseen object", _segment_failed, _unseen_object),
    FixRow("colour name", _colour_failed, _known_colour),
    FixRow("no person", _person_failed, _no_person),
)


def proposals(request: str, result: CheckResult, program: Program) -> list[tuple[str, Fix]]:
    """The fixes for one failing result: its own first, then the table's rows that apply (name, fix)."""
    found: list[tuple[str, Fix]] = [(result.check, result.fix)] if result.fix is not None else []
    for row in ROWS:
        if result.node and row.applies(result, program):
            found += [(row.name, f) for f in row.propose(request, result, program)]
    return found
