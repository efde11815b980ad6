"""The critic's protocol: what a tool's check receives and what it reports.

A tool declares its checks on its spec (``@tool(..., checks=(my_check,))``); the
critic calls each one with a :class:`CheckCall` (the node's inputs, literal args and
output, and the program's source picture) and collects :class:`CheckResult` lines.
Plug-ins declare their own the same way. A check measures, it never repaints: keep
(what must not change did not), follow (the tool did what its arguments say),
quality (no seams, halos, clipping, flat pictures), mask (the selection is sane),
intent (the plan matches the request).

``phrase`` templates describe one call in plain words: ``{name}`` is a port's plain
description (e.g. "everything except the person") or an arg's value; a part in
``[brackets]`` is dropped when a field inside it is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from banana.tools.values import Image, Value

CheckKind = Literal["keep", "follow", "quality", "mask", "intent"]


class Fix(BaseModel):
    """A local repair the loop can try without re-planning, one step along a check's advice.

    New args for the node; its mask inverted; a mask for a node that has none; another tool in its place (compatible args kept);
    a step appended after the program's output; the node dropped; or (when no step of the plan is explained by the
    request) the plan replaced by steps on the input. Steps are ``{"tool": ..., "args": {...}}``
    without the image port, which the loop wires.
    """

    args: dict[str, Any] = Field(default_factory=dict)
    invert_mask: bool = False
    tool: str | None = None
    append: list[dict[str, Any]] = Field(default_factory=list)
    replace: list[dict[str, Any]] = Field(default_factory=list)
    mask: str | None = None  # give an unmasked node this segment target's mask ("not X": everything except X)
    drop: bool = False  # take the node out: what used its picture uses the picture it was given (a step nobody asked for)


class CheckResult(BaseModel):
    """One measured check of one node (or of the whole program when ``node`` is empty)."""

    check: str
    kind: CheckKind
    node: str = ""
    tool: str = ""
    value: float
    threshold: float
    passed: bool
    hard: bool = True
    advice: str = ""
    fix: Fix | None = None

    def line(self) -> str:
        """One line a planner can act on."""
        where = f"node {self.node!r} ({self.tool})" if self.node else "program"
        state = "ok" if self.passed else ("FAILED" if self.hard else "warning")
        why = f": {self.advice}" if self.advice and not self.passed else ""
        return f"{where}: {self.check} {state} (value {self.value:.3g}, threshold {self.threshold:.3g}){why}"


@dataclass
class CheckCall:
    """Everything a check may look at for one executed node."""

    node: str
    tool: str
    args: dict[str, Any]
    ports: dict[str, Value]
    output: Value
    source: Image | None = None  # the program's $input
    words: dict[str, str] = field(default_factory=dict)  # port -> plain description of what feeds it ("the person")
    targets: dict[str, str] = field(default_factory=dict)  # port -> segment target phrase it derives from, "not X" when inverted

    def result(self, check: str, kind: CheckKind, value: float, threshold: float, passed: bool, advice: str = "",
               hard: bool = True, fix: Fix | None = None) -> CheckResult:
        return CheckResult(check=check, kind=kind, node=self.node, tool=self.tool, value=float(value), threshold=float(threshold),
                           passed=bool(passed), hard=hard, advice=advice, fix=fix)


_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def render_phrase(template: str, values: dict[str, Any]) -> str:
    """Fill a phrase template; optional ``[parts]`` vanish when a field in them is missing."""

    def optional(m: re.Match[str]) -> str:
        names = _FIELD.findall(m.group(1))
        return m.group(1) if all(values.get(n) is not None for n in names) else ""

    text = _OPTIONAL.sub(optional, template)
    text = _FIELD.sub(lambda m: _show(values[m.group(1)]) if values.get(m.group(1)) is not None else "", text)
    return re.sub(r"\s+", " ", text).strip(" ,")
