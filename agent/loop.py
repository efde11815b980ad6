"""The loop: plan -> validate -> run -> critique, and try again when a hard check fails.

One place, used by the CLI, chat, batch jobs and the server::

    result = run_loop("blur the background", {"input": picture}, planner, executor, registry)
    result.image, result.program, result.critique, result.attempts

After the first attempt, while some hard check fails and the budget lasts:
1. a *local fix*: a failing check's own :class:`~banana.tools.checks.Fix` (one argument
   step along its advice, the node's mask inverted or added, a tool swapped, a step added),
   else a row of the fix table (:mod:`banana.agent.fixes`: an object segment cannot see is
   found by its colour or as the main subject, an unknown colour phrase becomes its colour
   word), else *another implementation*: a routed node (a tool with several experts) that
   fails a hard check runs again without the expert that failed (the installed policy or the
   fixed order picks among the rest; later fixes keep the exclusion); fixes start from the
   best attempt, and from the last one when it ties (a second fix may finish what the first
   began); the executor's cache re-runs only the changed node and what depends on it;
2. a *re-plan*: the planner sees its previous plan and the critique's lines, as it sees the
   validator's messages (at most ``budget.replans`` times);
3. candidate plans: those given, then (once) ``samples`` plans sampled under the grammar with
   the critique in the prompt, kept when they pass the intent checks, reranked (agent/rerank.py).
It stops when every hard check passes, when the budget (attempts, seconds) is spent, when
two attempts in a row bring no strict improvement, or when nothing new is left to try.
The answer is always the best attempt seen by the critique's score, so never worse than
the first. Every step is a :class:`LoopEvent`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from banana.agent.critic import Critique, critique
from banana.agent.describe import describe
from banana.agent.executor import Executor, NodeEvent, RunResult
from banana.agent.fixes import proposals
from banana.agent.planner.base import Planner, PlanRequest, lower
from banana.agent.program import Program, ProgramError, ValidProgram, input_names, is_ref, ref_name, validate
from banana.tools.checks import CheckResult
from banana.tools.registry import Registry
from banana.tools.values import Value

EventKind = Literal["planned", "refused", "ran", "critique", "local_fix", "replan", "candidate", "best", "stopped"]


class Budget(BaseModel):
    """How hard the loop tries."""

    attempts: int = Field(default=4, ge=1, description="programs run in all, the first included")
    seconds: float = Field(default=60.0, gt=0, description="no new attempt, re-plan or sampling starts after this")
    replans: int = Field(default=2, ge=0, description="re-plans with the critique in the prompt")
    stale: int = Field(default=2, ge=1, description="stop after this many attempts in a row without strict improvement")
    reroute: bool = Field(default=True, description="run a routed node that fails a hard check again with another implementation")


class LoopEvent(BaseModel):
    """One step of the loop; ``time`` is seconds since it started."""

    kind: EventKind
    attempt: int
    time: float
    message: str = ""
    passed: bool | None = None


class LoopAttempt(BaseModel):
    """One program that was run and judged."""

    index: int
    how: str  # "plan", "local fix: ...", "re-plan", "candidate 2"
    program: dict[str, Any]
    description: str
    critique: Critique
    seconds: float
    produced: bool  # the output picture was made
    exclude: dict[str, list[str]] = Field(default_factory=dict)  # node -> implementations it ran without (other-implementation fix)

    @property
    def score(self) -> tuple[int, int, int, float]:
        return (0 if self.produced else 1, *self.critique.score)


@dataclass
class LoopResult:
    request: str
    attempts: list[LoopAttempt] = field(default_factory=list)
    events: list[LoopEvent] = field(default_factory=list)
    best: int = -1  # index into attempts
    image: Value | None = None
    valid: ValidProgram | None = None
    run: RunResult | None = None
    refusal: str | None = None
    stopped: str = ""
    seconds: float = 0.0

    @property
    def program(self) -> Program | None:
        return self.valid.program if self.valid is not None else None

    @property
    def critique(self) -> Critique | None:
        return self.attempts[self.best].critique if self.best >= 0 else None

    @property
    def passed(self) -> bool:
        return self.image is not None and self.critique is not None and self.critique.passed

    def explain(self) -> str:
        """What could not be done and why, in plain words."""
        if self.refusal:
            return f"cannot do this: {self.refusal}"
        c = self.critique
        if c is None or self.image is None:
            last = self.attempts[-1].critique.summary() if self.attempts else "nothing was run"
            return f"no result could be made: {last}"
        if c.passed:
            return f"done: {c.description} ({c.summary()})"
        return (
            f"the best of {len(self.attempts)} attempt(s) ({c.description}) still fails {len(c.hard_failures)} hard check(s): {c.summary()}"
        )


def _chain(steps: list[dict[str, Any]], start: str, taken: set[str]) -> list[dict[str, Any]]:
    """Steps as nodes, each on the previous picture, with fresh ids."""
    nodes, image = [], start
    for i, step in enumerate(steps):
        nid = f"fix{i}"
        while nid in taken:
            nid += "_"
        taken.add(nid)
        nodes.append({"id": nid, "tool": step["tool"], "args": {"image": image, **step.get("args", {})}})
        image = f"${nid}"
    return nodes


def _fresh(nid: str, nodes: dict[str, Any]) -> str:
    """An id not in ``nodes`` (and now taken)."""
    while nid in nodes:
        nid += "_"
    nodes[nid] = None
    return nid


def fix_program(program: Program, result: CheckResult, registry: Registry | None = None) -> Program | None:
    """The program with one failing check's local fix applied (None when it has none)."""
    fix = result.fix
    if fix is None:
        return None
    data = program.model_dump()
    taken = {n["id"] for n in data["nodes"]}
    if fix.replace:
        nodes = _chain(fix.replace, "$input", taken)
        return Program.model_validate({"version": 1, "nodes": nodes, "output": f"${nodes[-1]['id']}"})
    if fix.append:
        nodes = _chain(fix.append, data["output"], taken)
        return Program.model_validate({**data, "nodes": data["nodes"] + nodes, "output": f"${nodes[-1]['id']}"})
    if not result.node:
        return None
    nodes = {n["id"]: n for n in data["nodes"]}
    node = nodes.get(result.node)
    if node is None:
        return None
    if fix.drop:
        return _dropped(data, result.node)
    if fix.args:
        node["args"].update(fix.args)
    if fix.tool:
        if registry is None or fix.tool not in registry:
            return None
        spec = registry.get(fix.tool)
        node["tool"] = fix.tool
        node["args"] = {k: v for k, v in node["args"].items() if k in spec.inputs or k in spec.arg_names}
    if fix.mask:
        if node["args"].get("mask") is not None:
            return None
        target = fix.mask[4:] if fix.mask.startswith("not ") else fix.mask
        pos = data["nodes"].index(node)
        seg_id = _fresh("fix_mask", nodes)
        added = [{"id": seg_id, "tool": "segment", "args": {"image": "$input", "target": target}}]
        if fix.mask.startswith("not "):
            added.append({"id": _fresh(f"{seg_id}_inv", nodes), "tool": "invert", "args": {"mask": f"${seg_id}"}})
        data["nodes"][pos:pos] = added
        node["args"]["mask"] = f"${added[-1]['id']}"
    if fix.invert_mask:
        ref = node["args"].get("mask")
        if not is_ref(ref):
            return None
        src = nodes.get(ref_name(ref))
        if src is not None and src["tool"] == "invert" and is_ref(src["args"].get("mask")):
            node["args"]["mask"] = src["args"]["mask"]  # drop the invert
        else:
            new_id = f"{ref_name(ref)}_inv"[:32]
            while new_id in nodes:
                new_id = f"{new_id[:30]}_i"
            pos = data["nodes"].index(node)
            data["nodes"].insert(pos, {"id": new_id, "tool": "invert", "args": {"mask": ref}})
            node["args"]["mask"] = f"${new_id}"
    return Program.model_validate(data)


def _dropped(data: dict[str, Any], nid: str) -> Program | None:
    """``data`` without node ``nid``: its users take the picture it was given, and nodes nothing uses any more go too."""
    node = next(n for n in data["nodes"] if n["id"] == nid)
    given = node["args"].get("image")
    if not is_ref(given) and given != "$input":
        return None

    def swap(v: Any) -> Any:
        return given if v == f"${nid}" else [given if x == f"${nid}" else x for x in v] if isinstance(v, list) else v

    nodes = [{**n, "args": {k: swap(v) for k, v in n["args"].items()}} for n in data["nodes"] if n["id"] != nid]
    output = swap(data["output"])
    while True:  # prune what only the dropped step used (its mask, the segment behind it)
        used = {str(v)[1:] for n in nodes for v in n["args"].values() if is_ref(v)}
        used |= {str(x)[1:] for n in nodes for v in n["args"].values() if isinstance(v, list) for x in v if is_ref(x)}
        used.add(str(output)[1:])
        kept = [n for n in nodes if n["id"] in used]
        if len(kept) == len(nodes):
            break
        nodes = kept
    if not nodes:
        return None
    return Program.model_validate({**data, "nodes": nodes, "output": output})


def program_key(program: Program) -> str:
    """The program's canonical form: what its output is computed from, whatever the node ids and their order."""
    nodes = {n.id: n for n in program.nodes}
    done: dict[str, str] = {}

    def canon(value: Any) -> Any:
        if is_ref(value) and ref_name(value) in nodes:
            return node(ref_name(value))
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    def node(nid: str) -> str:
        if nid not in done:
            n = nodes[nid]
            done[nid] = json.dumps([n.tool, {k: canon(v) for k, v in sorted(n.args.items())}], sort_keys=True, default=str)
        return done[nid]

    return json.dumps(canon(program.output), default=str)


def attempt_key(program: Program, exclude: dict[str, list[str]] | None = None) -> str:
    """What makes an attempt new: the program's canonical form and the implementations its nodes run without."""
    shown = {n: sorted(v) for n, v in sorted((exclude or {}).items()) if v}
    return program_key(program) + (f"|exclude={json.dumps(shown)}" if shown else "")


def other_implementation(result: CheckResult, run: RunResult, exclude: dict[str, list[str]]) -> tuple[dict[str, list[str]], str] | None:
    """The exclusions that run ``result``'s node again without the expert that failed it, and a readable name for that
    fix; None when the node was not routed or no other implementation applies (its ``meta["route"]`` says both)."""
    out = run.outputs.get(result.node) if result.node else None
    route = (getattr(out, "meta", None) or {}).get("route") or {}
    if route.get("tool") != result.tool:  # not routed, or a record carried over from the picture it was given
        return None
    failed, costs = route.get("expert"), route.get("costs") or {}
    left = sorted((n for n in costs if n != failed and n not in exclude.get(result.node, [])), key=lambda n: costs[n])
    if not failed or not left:
        return None
    more = {**exclude, result.node: sorted({*exclude.get(result.node, []), failed})}
    return more, f"other implementation for {result.node}: {failed} → {' or '.join(left)}"


def next_fix(
    request: str, base: LoopAttempt, tried: set[str], registry: Registry, run: RunResult | None = None, reroute: bool = True
) -> tuple[Program | None, str, str, dict[str, list[str]]]:
    """The first local fix of ``base``'s hard failures not tried yet (see :func:`attempt_key`): per failure, the check's
    own, then :mod:`banana.agent.fixes`' rows, then (given ``base``'s ``run``, and ``reroute``) another implementation
    of the failing node. Returns the program, what the fix is, the check's advice and the exclusions to run it with
    (``base``'s, for the nodes the fix kept with the same tool)."""
    current = Program.model_validate(base.program)
    for r in base.critique.hard_failures:
        for name, fix in proposals(request, r, current):
            if fix.append and not base.produced:  # nothing to append to: the plan's own steps failed
                fix = fix.model_copy(update={"replace": fix.append, "append": []})
            fixed = fix_program(current, r.model_copy(update={"fix": fix}), registry)
            if fixed is None:
                continue
            before, after = ({n.id: n.tool for n in p.nodes} for p in (current, fixed))
            kept = {n: v for n, v in base.exclude.items() if after.get(n) is not None and after.get(n) == before.get(n)}
            if attempt_key(fixed, kept) not in tried:
                return fixed, f"{name} at {r.node!r}", r.advice, kept
        other = other_implementation(r, run, base.exclude) if reroute and run is not None else None
        if other is not None and attempt_key(current, other[0]) not in tried:
            return current, other[1], r.advice, other[0]
    return None, "", "", {}


def replan(planner: Planner, request: PlanRequest, previous: str, lines: list[str], registry: Registry) -> Program | None:
    """Ask the planner again with the critique's lines (and once more with the validator's, if it answers badly)."""
    inputs = {n: "Image" for n in input_names(request.inputs)}
    backend = planner.backend
    problems = lines
    for _ in range(2):
        text = backend.generate(request, previous, problems)
        try:
            return validate(lower(text, backend.surface, registry), registry, inputs=inputs).program
        except ProgramError as exc:
            previous, problems = text, [str(p) for p in exc.problems]
    return None


def surface_text(program: Program, planner: Planner, registry: Registry) -> str:
    """A program in the planner's own surface form (what it is shown as 'previous plan')."""
    if planner.backend.surface == "steps":
        from banana.agent.surface import to_steps

        return to_steps(program, registry)
    return program.to_json()


def run_loop(
    request: str | PlanRequest,
    images: dict[str, Value],
    planner: Planner,
    executor: Executor,
    registry: Registry,
    budget: Budget | None = None,
    on_event: Callable[[LoopEvent], None] | None = None,
    on_node: Callable[[NodeEvent], None] | None = None,
    critic: bool = True,
    candidates: list[Program] | None = None,
    first: Program | None = None,
    on_attempt: Callable[[ValidProgram, RunResult, Critique], None] | None = None,
    samples: int = 4,
) -> LoopResult:
    """Plan, run, critique and repair (see the module docstring). ``critic=False``: one pass, still judged.

    ``candidates``: other plans to fall back on (e.g. reranked samples); ``first``: skip planning
    and start from this program; ``samples``: plans sampled (once) when nothing else is left.
    ``on_attempt``: called with every run and its critique (traces). ``images``: the inputs by name
    (pictures; a value of another type, e.g. a given mask, is typed as given).
    Planning errors (:class:`PlanningError`) propagate.
    """
    budget = budget or Budget()
    req = request if isinstance(request, PlanRequest) else PlanRequest(instruction=request, inputs=max(1, len(images)))
    t0 = time.perf_counter()
    result = LoopResult(request=req.instruction)
    runs: list[tuple[ValidProgram, RunResult]] = []

    def emit(kind: EventKind, message: str = "", passed: bool | None = None) -> None:
        done = kind in ("critique", "best", "stopped")  # about the attempt just made; the others about the next one
        ev = LoopEvent(
            kind=kind, attempt=max(0, len(result.attempts) - done), time=round(time.perf_counter() - t0, 4), message=message, passed=passed
        )
        result.events.append(ev)
        if on_event is not None:
            on_event(ev)

    types = {n: "Image" for n in input_names(req.inputs)} | {n: v.type_name for n, v in images.items()}  # e.g. a given mask

    def attempt(program: Program, how: str, exclude: dict[str, list[str]] | None = None) -> LoopAttempt:
        start = time.perf_counter()
        valid = validate(program, registry, inputs=types)
        run = executor.run(valid, dict(images), on_event=on_node, exclude=exclude)
        emit("ran", f"{how}: {describe(valid, registry)} ({'ok' if run.ok else 'failed'}, {run.wall:.2f} s)")
        crit = (
            critique(valid, run, dict(images), registry, request=req.instruction, memo=executor.cache.memo)
            if critic
            else Critique(description=describe(valid, registry))
        )
        a = LoopAttempt(
            index=len(result.attempts),
            how=how,
            program=program.model_dump(),
            description=crit.description,
            critique=crit,
            seconds=round(time.perf_counter() - start, 4),
            produced=run.ok,
            exclude=exclude or {},
        )
        result.attempts.append(a)
        runs.append((valid, run))
        if on_attempt is not None:
            on_attempt(valid, run, crit)
        emit("critique", crit.summary(), passed=crit.passed)
        return a

    if first is None:
        plan = planner.plan(req)
        refusal = getattr(plan, "refusal", None)
        if refusal:
            result.refusal = refusal
            emit("refused", refusal)
            result.stopped, result.seconds = "refused", time.perf_counter() - t0
            return result
        assert plan.program is not None
        first, first_text = plan.program, plan.attempts[-1].text
        emit("planned", f"{plan.backend}, {plan.seconds:.2f} s:\n{first_text}")
    else:
        first_text = surface_text(first, planner, registry)
    queue = [p for p in candidates or [] if program_key(p) != program_key(first)]
    tried = {program_key(first)}
    best = attempt(first, "plan")
    last_text, replans, stale, sampled = first_text, 0, 0, False
    stopped = "single pass" if not critic else ("passed" if best.critique.passed else "")
    while critic and not result.attempts[best.index].critique.passed:
        if len(result.attempts) >= budget.attempts:
            stopped = "attempt budget spent"
            break
        if time.perf_counter() - t0 >= budget.seconds:
            stopped = "time budget spent"
            break
        current = Program.model_validate(best.program)
        nxt, how, exclude = None, "", {}
        last = result.attempts[-1]
        bases = [best] + ([last] if last.index != best.index and last.score == best.score else [])  # a tie may be one fix away
        for base in bases:
            nxt, what, advice, exclude = next_fix(req.instruction, base, tried, registry, runs[base.index][1], budget.reroute)
            if nxt is not None:
                emit("local_fix", f"{what}: {advice}")
                how = f"local fix: {what}"
                break
        while nxt is None and replans < budget.replans and time.perf_counter() - t0 < budget.seconds:
            replans += 1
            lines = best.critique.lines()
            emit("replan", f"re-plan {replans} with {len(lines)} critique line(s)")
            try:
                p = replan(planner, req, surface_text(current, planner, registry) if best.index else last_text, lines, registry)
            except Exception as exc:  # a planner that cannot answer ends the re-plans, not the loop
                emit("replan", f"the planner could not re-plan: {type(exc).__name__}: {exc}")
                replans = budget.replans
                break
            if p is not None and program_key(p) not in tried:
                nxt, how = p, f"re-plan {replans}"
            elif p is not None:  # the same critique gives the same answer again: no point asking twice
                emit("replan", "the planner answered with a plan already tried")
                replans = budget.replans
        out_of_time = time.perf_counter() - t0 >= budget.seconds
        if nxt is None and not queue and not sampled and samples and not out_of_time and getattr(planner.backend, "sample", None):
            sampled = True  # once: constrained samples with the critique in the prompt, reranked by intent
            from banana.agent.rerank import propose, rerank

            lines = best.critique.lines()
            try:
                found = rerank(
                    req,
                    propose(planner, req, samples, previous=surface_text(current, planner, registry), problems=lines),
                    planner,
                    registry,
                )
            except Exception as exc:  # sampling is a bonus: a failure ends it, not the loop
                emit("replan", f"sampling failed: {type(exc).__name__}: {exc}")
                found = []
            queue += [c.program for c in found if program_key(c.program) not in tried and c.intent_failures == 0]
            emit("replan", f"sampled {samples} plan(s): {len(queue)} new one(s) agree with the request")
        if nxt is None and queue:
            nxt = queue.pop(0)
            how = f"candidate {len(tried) + 1}"
            emit("candidate", describe(nxt, registry))
        if nxt is None:
            stopped = "nothing new to try"
            break
        tried.add(attempt_key(nxt, exclude))
        try:
            a = attempt(nxt, how, exclude)
        except (ProgramError, ValueError) as exc:  # a fix that does not validate is skipped
            emit("stopped", f"{how} is not a valid program: {exc}")
            continue
        if a.score < best.score:
            best, stale = a, 0
            emit("best", f"attempt {a.index} is the best so far", passed=a.critique.passed)
        else:
            stale += 1
            if stale >= budget.stale:
                stopped = "no strict improvement"
                break
    if result.attempts[best.index].critique.passed and critic:
        stopped = "passed"
    result.best = best.index
    result.valid, result.run = runs[best.index]
    result.image = result.run.outputs.get(result.valid.output)
    result.stopped, result.seconds = stopped, time.perf_counter() - t0
    emit("stopped", stopped, passed=result.passed)
    return result
