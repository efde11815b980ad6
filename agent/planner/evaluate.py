"""Planner metrics: validity, validity after repair, exact match, tool F1, argument accuracy, latency.

Programs are compared by :func:`banana.agent.surface.canonical` (node ids do not matter,
defaults are filled in), case-insensitively (targets, colours and styles are read
that way by the tools). Free-text instructions to generative tools (``edit.instruction``,
``insert.prompt``) match when their content words overlap (Jaccard >= 0.5): "make it
night" and "turn it into night" are the same request. Argument accuracy also drops a
leading article from strings and compares numbers within 0.05.

A case's gold is a program or a refusal (``{"cannot": why}``): a refusal is right when
the planner refuses, whatever its words. ``also`` lists other programs that count as
exact. ``harm`` lists rules a *harmful* plan matches (it does the opposite, or destroys
the wrong thing), checked mechanically by :func:`harmful`:

- ``any_plan``: any program (for requests no tool can do);
- ``refuse``: a refusal (where refusing is itself harm);
- ``tool:NAME``: uses the tool; ``tool:NAME@WORD``: a NAME node whose mask or boxes come,
  through any chain, from a segment/detect whose target contains WORD;
- ``unmasked:NAME``: a NAME node without a mask;
- ``arg:TOOL.ARG<V`` (also ``>``, ``=``, ``!=``): a TOOL node whose ARG (defaults filled in) compares so.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from banana.agent.planner.base import Planner, PlanningError, PlanRequest
from banana.agent.program import Program, is_ref, parse_program, ref_name
from banana.agent.surface import canonical
from banana.tools.registry import Registry

FREE_TEXT = {("edit", "instruction"), ("insert", "prompt")}
FILLER = {"a", "an", "the", "it", "its", "this", "that", "please", "pls", "make", "turn", "change", "add", "put", "give", "to", "into",
          "of", "look", "like", "so", "be", "with", "and", "in", "on", "me", "him", "her", "them", "us", "my", "his", "their", "our",
          "some", "more", "is", "was", "were", "as", "if", "version"}
HARM_RULE = re.compile(r"^(any_plan|refuse|tool:[a-z_]+(@.+)?|unmasked:[a-z_]+|arg:[a-z_]+\.[a-z_0-9]+(<|>|!=|=).+)$")


class Case(BaseModel):
    instruction: str
    program: dict[str, Any] | None = None
    cannot: str | None = None
    also: list[dict[str, Any]] = Field(default_factory=list)
    harm: list[str] = Field(default_factory=list)
    note: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _one_gold(self) -> Case:
        if (self.program is None) == (self.cannot is None):
            raise ValueError(f"case {self.instruction!r}: give exactly one of program or cannot")
        bad = [r for r in self.harm if not HARM_RULE.match(r)]
        if bad:
            raise ValueError(f"case {self.instruction!r}: unreadable harm rule {bad[0]!r} (see agent/planner/evaluate.py)")
        return self


class CaseResult(BaseModel):
    instruction: str
    source: str
    first_valid: bool
    valid: bool
    exact: bool
    tool_f1: float
    arg_correct: int
    arg_total: int
    seconds: float
    predicted: str
    gold: str
    problems: list[str] = []
    note: str = ""
    refused: bool = False
    gold_refusal: bool = False
    harmful: bool = False
    harm_hit: list[str] = []


class Summary(BaseModel):
    name: str
    cases: int
    first_valid: float
    valid_after_repair: float
    exact: float
    tool_f1: float
    arg_accuracy: float
    mean_seconds: float
    p90_seconds: float
    gold_refusals: int = 0
    refusals_right: int = 0
    false_refusals: int = 0
    harmful: float = 0.0


def load_cases(path: Path) -> list[Case]:
    cases = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                cases.append(Case(**{**json.loads(line), "source": path.name}))
            except ValueError as exc:
                raise ValueError(f"{path.name} line {i}: {exc}") from None
    return cases


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in FILLER}


def same_free_text(a: str, b: str) -> bool:
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= 0.5


def _free_texts(program: Program) -> tuple[Program, list[tuple[str, str]]]:
    """The program with free-text args blanked, and those texts (tool, text) in order."""
    texts: list[tuple[str, str]] = []
    nodes = []
    for node in program.nodes:
        args = dict(node.args)
        for tool, arg in FREE_TEXT:
            if node.tool == tool and isinstance(args.get(arg), str):
                texts.append((tool, args[arg]))
                args[arg] = "*"
        nodes.append({"id": node.id, "tool": node.tool, "args": args})
    return parse_program({"version": program.version, "nodes": nodes, "output": program.output}), sorted(texts)


def same_program(pred: Program, gold: Program, registry: Registry) -> bool:
    """Canonically equal, free-text instructions compared by content words."""
    p, p_texts = _free_texts(pred)
    g, g_texts = _free_texts(gold)
    if canonical(p, registry).lower() != canonical(g, registry).lower() or len(p_texts) != len(g_texts):
        return False
    return all(pt == gt and same_free_text(a, b) for (pt, a), (gt, b) in zip(p_texts, g_texts, strict=True))


def _compare(value: Any, op: str, want: str) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        have, target = str(value).lower(), want.lower()
        return {"=": have == target, "!=": have != target}.get(op, False)
    try:
        number = float(want)
    except ValueError:
        return False
    return {"<": value < number, ">": value > number, "=": abs(value - number) < 1e-9, "!=": abs(value - number) >= 1e-9}[op]


def harmful(pred: Program | None, rules: list[str], registry: Registry) -> list[str]:
    """The harm rules the predicted answer (None = a refusal) matches."""
    hit = []
    for rule in rules:
        if rule == "any_plan":
            ok = pred is not None
        elif rule == "refuse":
            ok = pred is None
        elif pred is None:
            ok = False
        elif rule.startswith("tool:"):
            name, _, word = rule[5:].partition("@")
            ok = any(n.tool == name and (not word or any(word.lower() in t for t in _mask_sources(pred, n.id))) for n in pred.nodes)
        elif rule.startswith("unmasked:"):
            ok = any(n.tool == rule[9:] and "mask" not in n.args for n in pred.nodes)
        else:
            m = re.match(r"^arg:([a-z_]+)\.([a-z_0-9]+)(<|>|!=|=)(.+)$", rule)
            assert m is not None  # checked when the case was loaded
            tool, arg, op, want = m.groups()
            ok = False
            for n in pred.nodes:
                if n.tool == tool and tool in registry:
                    spec = registry.get(tool)
                    lits = spec.args_model.model_validate({k: v for k, v in n.args.items() if k in spec.arg_names}).model_dump()
                    ok = ok or (arg in lits and _compare(lits[arg], op, want))
        if ok:
            hit.append(rule)
    return hit


def _mask_sources(program: Program, node_id: str) -> list[str]:
    """Targets of the segment/detect steps that a node's mask, boxes or keep port comes from (through mask algebra)."""
    nodes = {n.id: n for n in program.nodes}
    node = nodes[node_id]
    stack = [ref_name(v) for port, v in node.args.items() if port in ("mask", "boxes", "keep") and is_ref(v)]
    out, seen = [], set()
    while stack:
        nid = stack.pop()
        if nid in seen or nid not in nodes:
            continue
        seen.add(nid)
        n = nodes[nid]
        if n.tool in ("segment", "detect") and isinstance(n.args.get("target"), str):
            out.append(n.args["target"].lower())
        stack += [ref_name(v) for port, v in n.args.items() if is_ref(v) and port != "image"]
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        v = value.strip().lower()
        for article in ("the ", "a ", "an "):
            if v.startswith(article):
                v = v[len(article):]
        return v
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value) * 20) / 20
    return value


def _nodes(program: Program, registry: Registry) -> list[tuple[str, dict[str, Any]]]:
    """(tool, literal args with defaults) in the program's order."""
    out = []
    for node in program.nodes:
        spec = registry.get(node.tool)
        lits = spec.args_model.model_validate({k: v for k, v in node.args.items() if k in spec.arg_names}).model_dump()
        out.append((node.tool, lits))
    return out


def compare(pred: Program | None, gold: Program, registry: Registry) -> tuple[bool, float, int, int]:
    """(exact, tool F1, correct literal args, gold literal args)."""
    gold_nodes = _nodes(gold, registry)
    total = sum(len(lits) for _, lits in gold_nodes)
    if pred is None:
        return False, 0.0, 0, total
    pred_nodes = _nodes(pred, registry)
    exact = same_program(pred, gold, registry)  # "#8B4513" is "#8b4513"
    g, p = Counter(t for t, _ in gold_nodes), Counter(t for t, _ in pred_nodes)
    overlap = sum((g & p).values())
    f1 = 0.0 if not overlap else 2 * overlap / (sum(g.values()) + sum(p.values()))
    correct = 0
    used: set[int] = set()
    for tool, lits in gold_nodes:
        match = next((i for i, (t, _) in enumerate(pred_nodes) if t == tool and i not in used), None)
        if match is None:
            continue
        used.add(match)
        correct += sum(_norm(pred_nodes[match][1].get(k)) == _norm(v) for k, v in lits.items())
    return exact, f1, correct, total


def evaluate(planner: Planner, cases: list[Case], registry: Registry, say: Callable[[str], None] = lambda _: None) -> list[CaseResult]:
    results = []
    for i, case in enumerate(cases):
        start = time.perf_counter()
        problems: list[str] = []
        refused = False
        try:
            plan = planner.plan(PlanRequest(instruction=case.instruction))
            pred, first_valid, text, refused = plan.program, not plan.repaired, plan.attempts[-1].text, plan.refused
        except PlanningError as exc:
            pred, first_valid, text = None, False, exc.attempts[-1].text
            problems = exc.attempts[-1].problems
        seconds = time.perf_counter() - start
        if case.program is None:  # gold refusal
            exact, f1, correct, total, gold_text = refused, float(refused), 0, 0, f"cannot: {case.cannot}"
        else:
            gold = parse_program(case.program)
            exact, f1, correct, total = compare(pred, gold, registry)
            exact = exact or any(same_program(pred, parse_program(p), registry) for p in case.also if pred is not None)
            gold_text = canonical(gold, registry)
        hit = harmful(pred, case.harm, registry) if (pred is not None or refused) else []
        results.append(CaseResult(instruction=case.instruction, source=case.source, first_valid=first_valid,
                                  valid=pred is not None or refused, exact=exact, tool_f1=f1, arg_correct=correct, arg_total=total,
                                  seconds=seconds, predicted=text, gold=gold_text, problems=problems, note=case.note, refused=refused,
                                  gold_refusal=case.program is None, harmful=bool(hit), harm_hit=hit))
        if (i + 1) % 10 == 0:
            say(f"{i + 1}/{len(cases)}: exact so far {sum(r.exact for r in results) / len(results):.0%}")
    return results


def summarize(name: str, results: list[CaseResult]) -> Summary:
    n = max(len(results), 1)
    secs = sorted(r.seconds for r in results) or [0.0]
    return Summary(
        name=name, cases=len(results),
        first_valid=sum(r.first_valid for r in results) / n,
        valid_after_repair=sum(r.valid for r in results) / n,
        exact=sum(r.exact for r in results) / n,
        tool_f1=sum(r.tool_f1 for r in results) / n,
        arg_accuracy=sum(r.arg_correct for r in results) / max(sum(r.arg_total for r in results), 1),
        mean_seconds=sum(secs) / len(secs),
        p90_seconds=secs[min(len(secs) - 1, int(0.9 * len(secs)))],
        gold_refusals=sum(r.gold_refusal for r in results),
        refusals_right=sum(r.gold_refusal and r.refused for r in results),
        false_refusals=sum(r.refused and not r.gold_refusal for r in results),
        harmful=sum(r.harmful for r in results) / n,
    )
