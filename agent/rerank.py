"""Reranking sampled plans by intent: greedy + constrained samples, described in plain words, compared with the request.

Each candidate is scored by the MiniLM similarity of its description (built from each
tool's own ``phrase``) to the request, plus the planner's own mean token log-probability,
minus a penalty for every intent check it fails before anything runs. The loop uses the
candidates as fallbacks; :class:`RerankingPlanner` makes the top one the plan (measured
with ``python -m bench.planner --rerank``; kept off by default unless it helps).
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel

from banana.agent.describe import describe
from banana.agent.intent import intent_checks
from banana.agent.planner.base import Attempt, Plan, Planner, PlanRequest, lower
from banana.agent.program import Program, ProgramError, input_names, validate
from banana.agent.surface import canonical
from banana.tools.registry import Registry

INTENT_PENALTY = 1.0
LIKELIHOOD_WEIGHT = 1.0


class Candidate(BaseModel):
    text: str
    program: Program
    description: str
    greedy: bool = False
    loglik: float = 0.0
    similarity: float = 0.0
    intent_failures: int = 0

    @property
    def score(self) -> float:
        return self.similarity + LIKELIHOOD_WEIGHT * self.loglik - INTENT_PENALTY * self.intent_failures


def propose(
    planner: Planner,
    request: PlanRequest,
    k: int = 4,
    seed: int = 0,
    greedy: str | None = None,
    previous: str = "",
    problems: list[str] | None = None,
) -> list[Candidate]:
    """The greedy plan (given, or decoded now) and up to ``k`` distinct valid samples."""
    backend, registry = planner.backend, planner.registry
    texts = [greedy if greedy is not None else backend.generate(request, previous, problems)]
    sample = getattr(backend, "sample", None)
    if sample is not None and k > 0:
        texts += sample(request, k=k, seed=seed, previous=previous, problems=problems)
    inputs = {n: "Image" for n in input_names(request.inputs)}
    seen: set[str] = set()
    out: list[Candidate] = []
    for i, text in enumerate(texts):
        try:
            valid = validate(lower(text, backend.surface, registry), registry, inputs=inputs)
        except (ProgramError, ValueError):
            continue
        key = canonical(valid.program, registry)
        if key in seen:
            continue
        seen.add(key)
        fails = sum(not r.passed for r in intent_checks(request.instruction, valid, registry))
        out.append(Candidate(text=text, program=valid.program, description=describe(valid, registry), greedy=i == 0, intent_failures=fails))
    return out


def rerank(request: PlanRequest, candidates: list[Candidate], planner: Planner, registry: Registry) -> list[Candidate]:
    """Candidates best first (stable: ties keep the greedy plan first)."""
    if len(candidates) <= 1:
        return candidates
    from banana.experts.style import get_text_encoder

    vectors = get_text_encoder().encode([request.instruction] + [c.description for c in candidates])
    sims = vectors[1:] @ vectors[0]
    loglik = getattr(planner.backend, "loglik", None)
    liks = loglik(request, [c.text for c in candidates]) if loglik is not None else [0.0] * len(candidates)
    for c, s, lk in zip(candidates, sims, liks, strict=True):
        c.similarity, c.loglik = float(s), float(lk)
    order = np.argsort([-c.score for c in candidates], kind="stable")
    return [candidates[i] for i in order]


class RerankingPlanner(Planner):
    """A planner whose answer is the best of the greedy plan and ``k`` samples."""

    def __init__(self, inner: Planner, k: int = 4) -> None:
        super().__init__(inner.backend, inner.registry, inner.max_repairs)
        self.k = k

    def plan(self, request: PlanRequest | str) -> Plan:
        if isinstance(request, str):
            request = PlanRequest(instruction=request)
        start = time.perf_counter()
        plan = super().plan(request)
        if plan.program is None:
            return plan
        ranked = rerank(request, propose(self, request, self.k, greedy=plan.attempts[-1].text), self, self.registry)
        if not ranked or ranked[0].greedy:
            return plan.model_copy(update={"seconds": time.perf_counter() - start})
        best = ranked[0]
        return plan.model_copy(
            update={"program": best.program, "attempts": [*plan.attempts, Attempt(text=best.text)], "seconds": time.perf_counter() - start}
        )
