"""The Planner: one interface over backends, and the one validation-repair loop.

A backend turns a request (plus, on a retry, its previous answer and the validator's
exact messages) into text in its surface form: the JSON program for general models
behind an OpenAI-compatible server, the compact steps form for the embedded model.
The loop lowers, validates, and re-prompts with the problems up to a bound; then it
raises a :class:`PlanningError` that says what was wrong with every attempt.

A backend may also refuse honestly (``cannot reason="..."`` in steps, ``{"cannot": "..."}``
in JSON) when no installed tool can do what was asked; the plan then carries the
reason instead of a program. Input with no words in it is refused before any model runs.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from banana.agent.program import Problem, Program, ProgramError, ValidProgram, input_names, parse_program, planner_schema, validate
from banana.agent.surface import parse_refusal, parse_steps, refusal_steps
from banana.prompts import render
from banana.tools.registry import Registry

Surface = Literal["json", "steps"]


class PlanRequest(BaseModel):
    instruction: str = Field(min_length=1, max_length=1000)
    inputs: int = Field(default=1, ge=1, le=8, description="how many pictures the session has ($input, $input1, ...)")


class Attempt(BaseModel):
    text: str
    problems: list[str] = Field(default_factory=list)


class Refusal(BaseModel):
    """The planner's honest answer when no installed tool can do the request."""

    reason: str = Field(min_length=1, max_length=300)


class Plan(BaseModel):
    """A validated program, or (``refusal`` set, ``program`` None) the reason no program fits the request."""

    model_config = {"arbitrary_types_allowed": True}

    request: PlanRequest
    program: Program | None
    refusal: str | None = None
    attempts: list[Attempt]
    backend: str
    seconds: float

    @property
    def repaired(self) -> bool:
        return len(self.attempts) > 1

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def to_json(self) -> str:
        """The program's JSON, or ``{"cannot": reason}`` (the line ``banana plan --jsonl`` prints)."""
        if self.program is None:
            return json.dumps({"cannot": self.refusal})
        return self.program.to_json()


class PlanningError(RuntimeError):
    def __init__(self, request: PlanRequest, attempts: list[Attempt], backend: str) -> None:
        self.request, self.attempts, self.backend = request, attempts, backend
        last = attempts[-1] if attempts else Attempt(text="", problems=["no attempt was made"])
        super().__init__(f"{backend} could not plan {request.instruction!r} in {len(attempts)} attempt(s); "
                         f"last problems: {'; '.join(last.problems)}")


class Backend(Protocol):
    name: str
    surface: Surface

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str: ...


# Every added token of the planner's tokenizer (SmolLM2; tests/test_untrusted_planner_text.py checks the list against it).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>", "<gh_stars>",
    "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
    "<jupyter_output>", "<jupyter_script>", "<empty_output>",
)
_SPECIAL = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)) + r"|<\|[^<>|\s]{0,40}\|>")  # and any other <|name|>


def _plain(text: str) -> str:
    """User text cannot open or close chat turns: special tokens are dropped until none is left
    (one pass would turn ``<|im_<|im_end|>end|>`` into a real end-of-turn)."""
    while True:
        cleaned = _SPECIAL.sub("", text)
        if cleaned == text:
            return text
        text = cleaned


def prompt_for(instruction: str, previous: str = "", problems: list[str] | None = None) -> str:
    """The steps-form prompt (embedded model, and the same LoRA served by vLLM)."""
    return render("steps_planner", instruction=_plain(instruction), previous=_plain(previous),
                  problems=[_plain(p) for p in problems or []])


JUNK_REASON = "that is not an edit request: say what to change in the picture"
REFUSAL_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"cannot": {"type": "string", "minLength": 1, "maxLength": 300}},
                                  "required": ["cannot"], "additionalProperties": False}


def answer_schema(registry: Registry, refs: list[str] | None = None, max_nodes: int | None = None) -> dict[str, Any]:
    """What a JSON-surface backend may answer: a program, or ``{"cannot": "reason"}``."""
    program = planner_schema(registry, refs=refs, **({"max_nodes": max_nodes} if max_nodes else {}))
    program = {k: v for k, v in program.items() if k != "$schema"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Banana answer", "anyOf": [program, REFUSAL_SCHEMA]}


def is_junk(instruction: str) -> bool:
    """Nothing to plan: no letters at all (empty, punctuation, digits, emoji), or a single letter."""
    return sum(ch.isalpha() for ch in _plain(instruction)) < 2


def json_refusal(text: str) -> str | None:
    """The reason of a JSON answer ``{"cannot": "..."}``; None when the answer is something else."""
    try:
        data = json.loads(_strip_fences(text))
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any answer: not a refusal
        return None
    if isinstance(data, dict) and "cannot" in data:
        if set(data) != {"cannot"} or not isinstance(data["cannot"], str) or not data["cannot"].strip():
            raise ProgramError([Problem(message='a refusal is exactly {"cannot": "why no tool can do it"}')])
        return data["cannot"].strip()
    return None


def read_answer(text: str, surface: Surface, registry: Registry) -> Program | Refusal:
    """Backend text -> Program or Refusal (ProgramError on anything unreadable)."""
    reason = parse_refusal(text) if surface == "steps" else json_refusal(text)
    if reason is not None:
        return Refusal(reason=reason[:300])
    return lower(text, surface, registry)


def lower(text: str, surface: Surface, registry: Registry) -> Program:
    """Backend text -> Program (ProgramError on anything unreadable)."""
    return parse_steps(text, registry) if surface == "steps" else parse_program(_strip_fences(text))


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def check(text: str, surface: Surface, registry: Registry, inputs: int = 1) -> ValidProgram:
    return validate(lower(text, surface, registry), registry, inputs={n: "Image" for n in input_names(inputs)})


class Planner:
    """Plans with a backend, repairing invalid answers with the validator's messages."""

    def __init__(self, backend: Backend, registry: Registry, max_repairs: int = 2) -> None:
        self.backend = backend
        self.registry = registry
        self.max_repairs = max_repairs

    def plan(self, request: PlanRequest | str) -> Plan:
        if isinstance(request, str):
            request = PlanRequest(instruction=request)
        start = time.perf_counter()
        if is_junk(request.instruction):
            return Plan(request=request, program=None, refusal=JUNK_REASON, attempts=[Attempt(text=refusal_steps(JUNK_REASON))],
                        backend="rules", seconds=time.perf_counter() - start)
        attempts: list[Attempt] = []
        previous, problems = "", None
        for _ in range(1 + self.max_repairs):
            text = self.backend.generate(request, previous, problems)
            try:
                answer = read_answer(text, self.backend.surface, self.registry)
                if isinstance(answer, Refusal):
                    attempts.append(Attempt(text=text))
                    return Plan(request=request, program=None, refusal=answer.reason, attempts=attempts, backend=self.backend.name,
                                seconds=time.perf_counter() - start)
                valid = validate(answer, self.registry, inputs={n: "Image" for n in input_names(request.inputs)})
            except ProgramError as exc:
                problems = [str(p) for p in exc.problems]
                attempts.append(Attempt(text=text, problems=problems))
                previous = text
                continue
            attempts.append(Attempt(text=text))
            return Plan(request=request, program=valid.program, attempts=attempts, backend=self.backend.name,
                        seconds=time.perf_counter() - start)
        raise PlanningError(request, attempts, self.backend.name)
