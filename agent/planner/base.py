"""The Planner: one interface over backends, and the one validation-repair loop.

A backend turns a request (plus, on a retry, its previous answer and the validator's
exact messages) into text in its surface form: the JSON program for general models
behind an OpenAI-compatible server, the compact steps form for the embedded model.
The loop lowers, validates, and re-prompts with the problems up to a bound; then it
raises a :class:`PlanningError` that says what was wrong with every attempt.
"""

from __future__ import annotations

import time
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from banana.agent.program import Program, ProgramError, ValidProgram, input_names, parse_program, validate
from banana.agent.surface import parse_steps
from banana.prompts import render
from banana.tools.registry import Registry

Surface = Literal["json", "steps"]


class PlanRequest(BaseModel):
    instruction: str = Field(min_length=1, max_length=1000)
    inputs: int = Field(default=1, ge=1, le=8, description="how many pictures the session has ($input, $input1, ...)")


class Attempt(BaseModel):
    text: str
    problems: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    request: PlanRequest
    program: Program
    attempts: list[Attempt]
    backend: str
    seconds: float

    @property
    def repaired(self) -> bool:
        return len(self.attempts) > 1


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


CHAT_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def _plain(text: str) -> str:
    """User text cannot open or close chat turns: the markers are dropped."""
    for marker in CHAT_MARKERS:
        text = text.replace(marker, "")
    return text


def prompt_for(instruction: str, previous: str = "", problems: list[str] | None = None) -> str:
    """The steps-form prompt (embedded model, and the same LoRA served by vLLM)."""
    return render("steps_planner", instruction=_plain(instruction), previous=_plain(previous),
                  problems=[_plain(p) for p in problems or []])


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
        attempts: list[Attempt] = []
        previous, problems = "", None
        for _ in range(1 + self.max_repairs):
            text = self.backend.generate(request, previous, problems)
            try:
                valid = check(text, self.backend.surface, self.registry, request.inputs)
            except ProgramError as exc:
                problems = [str(p) for p in exc.problems]
                attempts.append(Attempt(text=text, problems=problems))
                previous = text
                continue
            attempts.append(Attempt(text=text))
            return Plan(request=request, program=valid.program, attempts=attempts, backend=self.backend.name,
                        seconds=time.perf_counter() - start)
        raise PlanningError(request, attempts, self.backend.name)
