"""One chat turn: revise the previous program (or plan a new one), run it, store it.

:class:`Agent` holds what must stay loaded across turns: the registry, the planner
(loaded on first use) and one executor with its result cache, so a follow-up that
changes one argument re-runs only that node and what depends on it.
:func:`run_turn` is the single place that turns text into a picture: the follow-up
rules (agent/planner/followups.py) make the program, the critique loop (agent/loop.py)
runs and judges it (local fixes; re-plans only for a turn planned from scratch).
:class:`ChatSession` ties an agent to a session in the store (the chat, the server).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from banana.agent.executor import Executor, NodeEvent, ResultCache, RunResult
from banana.agent.planner.followups import FollowUpError, Op, Revision, revise
from banana.agent.program import Program, ProgramError, parse_program, validate
from banana.agent.sessions import Store, StoreError, Turn
from banana.agent.surface import to_steps
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Image

OnEvent = Callable[[NodeEvent], None]


class TurnError(RuntimeError):
    """A turn that produced no picture: it could not be planned, did not apply, or a node failed."""


class Agent:
    """The models and caches a chat keeps between turns."""

    def __init__(self, registry: Registry | None = None, planner: Any = None,
                 planner_factory: Callable[[], Any] | None = None, cache: ResultCache | None = None,
                 critic: bool = True, attempts: int = 3, replans: int = 1) -> None:
        self.registry = registry or default_registry()
        self.critic, self.attempts, self.replans = critic, attempts, replans
        self._planner = planner
        self._planner_factory = planner_factory
        self.executor = Executor(self.registry, cache=cache or ResultCache())

    @property
    def planner(self) -> Any:
        if self._planner is None:
            if self._planner_factory is None:
                from banana.agent.planner import make_planner

                self._planner = make_planner(self.registry)
            else:
                self._planner = self._planner_factory()
        return self._planner

    def plan(self, text: str) -> Program:
        """The planner's program for a clause; TurnError when it cannot plan it or says no tool can do it."""
        from banana.agent.planner import PlanningError

        try:
            plan = self.planner.plan(text)
        except PlanningError as exc:
            raise TurnError(str(exc)) from None
        if getattr(plan, "refusal", None) is not None or plan.program is None:
            raise TurnError(f"cannot: {getattr(plan, 'refusal', None) or 'the planner made no program'}")
        return plan.program

    def run(self, program: Program, base: Image, on_event: OnEvent | None = None) -> RunResult:
        return self.executor.run(validate(program, self.registry), {"input": base}, on_event=on_event)

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TurnOutcome:
    """What a turn did. ``program`` is None (and ``picture`` the base) when the edits are all undone."""

    op: str
    program: Program | None
    picture: Image
    critique: dict[str, Any] | None = None
    plan_seconds: float = 0.0
    run_seconds: float = 0.0
    planned: list[str] = field(default_factory=list)
    run: RunResult | None = None

    def steps(self, registry: Registry) -> str:
        if self.program is None:
            return "(the original picture)"
        try:
            return to_steps(self.program, registry)
        except ValueError:
            return self.program.to_json(indent=2)


def run_turn(agent: Agent, base: Image, previous: Program | None, text: str, on_event: OnEvent | None = None) -> TurnOutcome:
    """Text -> revised program -> picture. Undo/redo come back with ``op`` set and nothing run."""
    t0 = time.perf_counter()
    try:
        rev: Revision = revise(previous, text, agent.plan, agent.registry)
    except FollowUpError as exc:
        raise TurnError(str(exc)) from None
    except ProgramError as exc:
        raise TurnError(f"the revised plan is not valid: {exc}") from None
    t1 = time.perf_counter()
    if rev.program is None:
        return TurnOutcome(op=rev.follow_up.op.value, program=None, picture=base, plan_seconds=t1 - t0)
    fresh = previous is None  # the whole text was planned: the loop may re-plan it with the critique
    return execute_program(agent, base, rev.program, rev.follow_up.op.value, on_event, plan_seconds=t1 - t0,
                           planned=rev.planned, text=text, replans=agent.replans if fresh else 0)


class _NoPlanner:
    """Stands in for the planner when a program is run as given: the loop may fix nodes locally, never re-plan."""

    backend = type("NoBackend", (), {"surface": "json", "name": "none"})()

    def plan(self, request: object) -> object:
        raise TurnError("this turn runs a given program; there is no planner to ask")


def execute_program(agent: Agent, base: Image, program: Program, op: str = "program", on_event: OnEvent | None = None,
                    plan_seconds: float = 0.0, planned: list[str] | None = None, text: str = "",
                    replans: int = 0) -> TurnOutcome:
    """Run a program on the base picture: through the critique loop (local fixes; ``replans`` re-plans of
    ``text``) when the agent has a critic, else once. TurnError says what failed."""
    from banana.agent.loop import Budget, run_loop
    from banana.agent.preflight import NeedsWeights

    t1 = time.perf_counter()
    try:
        if not agent.critic:
            result = agent.run(program, base, on_event)
            critique = None
        else:
            planner = agent.planner if replans else _NoPlanner()
            loop = run_loop(text or op, {"input": base}, planner, agent.executor, agent.registry,  # type: ignore[arg-type]
                            budget=Budget(replans=replans, attempts=agent.attempts), on_node=on_event, first=program)
            if loop.image is None or loop.run is None or loop.program is None:
                raise TurnError(loop.explain())
            result, program = loop.run, loop.program
            critique = loop.critique.model_dump(mode="json") if loop.critique is not None else None
    except ProgramError as exc:
        raise TurnError(f"the plan is not valid: {exc}") from None
    except NeedsWeights as exc:
        raise TurnError(f"needs weights: {exc}") from None
    if not result.ok:
        failure = result.failures.get(result.output_id) or next(iter(result.failures.values()))
        raise TurnError(failure.error)
    return TurnOutcome(op=op, program=program, picture=result.output, critique=critique,  # type: ignore[arg-type]
                       plan_seconds=plan_seconds, run_seconds=time.perf_counter() - t1, planned=planned or [], run=result)


class ChatSession:
    """A named session in a store, driven turn by turn (used by ``banana chat`` and the server)."""

    def __init__(self, store: Store, name: str, agent: Agent) -> None:
        self.store, self.name, self.agent = store, store.create_session(name), agent

    @property
    def current(self) -> Turn | None:
        return self.store.current(self.name)

    def picture(self) -> Image:
        turn = self._need_picture()
        return self.store.picture(turn.picture)

    def _need_picture(self) -> Turn:
        turn = self.current
        if turn is None:
            raise TurnError("there is no picture yet: open one first (/open IMAGE)")
        return turn

    def open(self, image: Image, label: str = "") -> Turn:
        return self.store.add_turn(self.name, instruction=label, picture=image, kind="open")

    def say(self, text: str, on_event: OnEvent | None = None) -> tuple[Turn, TurnOutcome]:
        """One turn of text: undo/redo move the cursor; anything else adds a turn."""
        turn = self._need_picture()
        previous = parse_program(turn.program) if turn.program else None
        base = self.store.picture(turn.base)
        outcome = run_turn(self.agent, base, previous, text, on_event)
        if outcome.op == Op.UNDO:
            return self.undo(), outcome
        if outcome.op == Op.REDO:
            return self.redo(), outcome
        saved = self.store.add_turn(self.name, instruction=text, picture=outcome.picture, parent=turn.n,  # the turn it revised
                                    program=outcome.program.model_dump() if outcome.program else None,
                                    critique=outcome.critique,
                                    meta={"op": outcome.op, "plan_s": outcome.plan_seconds, "run_s": outcome.run_seconds})
        return saved, outcome

    def undo(self) -> Turn:
        try:
            return self.store.undo(self.name)
        except StoreError as exc:
            raise TurnError(str(exc)) from None

    def redo(self) -> Turn:
        try:
            return self.store.redo(self.name)
        except StoreError as exc:
            raise TurnError(str(exc)) from None

    def branch(self, n: int) -> Turn:
        try:
            return self.store.branch(self.name, n)
        except StoreError as exc:
            raise TurnError(str(exc)) from None
