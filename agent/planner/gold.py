"""A typed builder for gold answers: tool calls checked against the registry, printed as steps.

The generator and the tests build gold plans as :class:`Call` lists instead of writing
steps text by hand, so an unknown tool, an unknown argument or a value out of range is
an error at generation time (naming the call), never a silently learned mistake.
Arguments equal to the tool's default are left out, as a person would write them,
except the few the conventions always spell out (:data:`ALWAYS_WRITTEN`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from banana.agent.program import Program, ProgramError, validate
from banana.agent.surface import parse_steps, refusal_steps
from banana.tools.registry import Registry

ALWAYS_WRITTEN = {("blur", "amount"), ("upscale", "factor")}  # the conventions write these even at their default


class GoldError(ValueError):
    """A gold answer that the registry would not accept."""


@dataclass(frozen=True)
class Call:
    """One step of a gold plan: a registered tool and its literal args (ports are implicit, as in steps)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


def _value(v: Any) -> str:
    if isinstance(v, float):
        v = round(v, 3)
    return json.dumps(v, separators=(",", ":"))


def check_call(call: Call, registry: Registry) -> dict[str, Any]:
    """The call's args with defaults dropped; GoldError names the tool and the arg on anything the registry refuses."""
    if call.tool not in registry:
        raise GoldError(f"gold plan uses unknown tool {call.tool!r}{registry.suggest(call.tool)}")
    spec = registry.get(call.tool)
    unknown = [k for k in call.args if k not in spec.arg_names]
    if unknown:
        ports = [k for k in unknown if k in spec.inputs]
        what = "is a port (filled in from earlier steps)" if ports else "is not an argument"
        raise GoldError(f"gold plan: {call.tool} {unknown[0]!r} {what}; {call.tool} takes {', '.join(spec.arg_names) or 'no arguments'}")
    try:
        spec.args_model.model_validate(call.args)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise GoldError(f"gold plan: {call.tool} {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    fields = spec.args_model.model_fields
    return {k: v for k, v in call.args.items()
            if (call.tool, k) in ALWAYS_WRITTEN or fields[k].is_required() or v != fields[k].default}


def steps_text(calls: list[Call], registry: Registry) -> str:
    """The checked steps text of a gold plan (each call validated, then the whole program)."""
    lines = []
    for call in calls:
        args = check_call(call, registry)
        lines.append(" ".join([call.tool, *(f"{k}={_value(v)}" for k, v in args.items())]))
    text = "\n".join(lines)
    try:
        validate(parse_steps(text, registry), registry)
    except ProgramError as exc:
        raise GoldError(f"gold plan {text!r} is not a valid program: {exc}") from None
    return text


def program(calls: list[Call], registry: Registry) -> Program:
    """The gold plan as a program (for evaluation sets and tests)."""
    return parse_steps(steps_text(calls, registry), registry)


def refusal_text(reason: str) -> str:
    return refusal_steps(reason)
