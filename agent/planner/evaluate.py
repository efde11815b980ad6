"""Planner metrics: validity, validity after repair, exact match, tool F1, argument accuracy, latency.

Programs are compared by :func:`banana.agent.surface.canonical` (node ids do not matter,
defaults are filled in), case-insensitively (targets, colours and styles are read
that way by the tools). Argument accuracy also drops a leading article from strings
and compares numbers within 0.05.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from banana.agent.planner.base import Planner, PlanningError, PlanRequest
from banana.agent.program import Program, parse_program
from banana.agent.surface import canonical
from banana.tools.registry import Registry


class Case(BaseModel):
    instruction: str
    program: dict[str, Any]
    source: str = ""


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


def load_cases(path: Path) -> list[Case]:
    return [Case(**json.loads(line), source=path.name) for line in path.read_text().splitlines() if line.strip()]


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
    exact = canonical(pred, registry).lower() == canonical(gold, registry).lower()  # "#8B4513" is "#8b4513"
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
        gold = parse_program(case.program)
        start = time.perf_counter()
        problems: list[str] = []
        try:
            plan = planner.plan(PlanRequest(instruction=case.instruction))
            pred, first_valid, text = plan.program, not plan.repaired, plan.attempts[-1].text
        except PlanningError as exc:
            pred, first_valid, text = None, False, exc.attempts[-1].text
            problems = exc.attempts[-1].problems
        seconds = time.perf_counter() - start
        exact, f1, correct, total = compare(pred, gold, registry)
        results.append(CaseResult(instruction=case.instruction, source=case.source, first_valid=first_valid, valid=pred is not None,
                                  exact=exact, tool_f1=f1, arg_correct=correct, arg_total=total, seconds=seconds,
                                  predicted=text, gold=canonical(gold, registry), problems=problems))
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
    )
