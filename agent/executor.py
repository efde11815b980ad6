"""The one executor: runs a validated program, node by node, as tool calls.

- dependency order; independent branches run concurrently on a thread pool;
  tools that need a GPU (or say they are not thread-safe) hold a lock per device;
- a content-addressed cache (:mod:`banana.agent.cache`: the tool, its code version, salt,
  literal args, the content of files it reads and the keys of the nodes feeding it, chained
  back to the input pictures' content hashes), so a re-run with one changed node re-executes
  only that node and its dependants; a tool with ``cache=False`` always runs, and what it
  feeds is keyed on its output's content;
- events per node for progress bars and servers;
- ``exclude``: implementations of a routed tool a node must not use (the loop's "other implementation"
  fix); they are part of that node's cache key, so the re-run is never served the excluded one's result;
- a failing node stops only its dependants; finished results stay available;
- cancellation between nodes, and inside tools that call ``ctx.progress``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from banana.agent.cache import ResultCache, cache_key
from banana.agent.preflight import preflight
from banana.agent.program import ValidProgram, is_ref, ref_name
from banana.experts.manager import excluding, routed_by_policy
from banana.tools.files import ReadPolicy, file_digests
from banana.tools.memo import using
from banana.tools.registry import Registry
from banana.tools.spec import Cancelled, TimedOut, ToolContext, ToolSpec
from banana.tools.values import Value

log = logging.getLogger(__name__)

DEFAULT_NODE_TIMEOUT_S = 600.0  # one tool call; BANANA_NODE_TIMEOUT or node_timeout_s changes it ("0": no limit)
GRACE_S = 1.0  # how long a node past its limit (or an interrupted run) gets to notice before it is abandoned


def node_timeout(value: float | None = None) -> float | None:
    """The per-node time limit: the argument, else BANANA_NODE_TIMEOUT, else the default; 0 means none."""
    if value is None:
        raw = os.environ.get("BANANA_NODE_TIMEOUT", "").strip()
        try:
            value = float(raw) if raw else DEFAULT_NODE_TIMEOUT_S
        except ValueError:
            raise ValueError(f"BANANA_NODE_TIMEOUT={raw!r}: expected seconds, e.g. 120 (0: no limit)") from None
    if value < 0:
        raise ValueError(f"a node time limit must be >= 0 seconds (0: no limit), got {value}")
    return value or None
EventKind = Literal["queued", "started", "progress", "finished", "cached", "failed", "skipped", "cancelled"]


class NodeEvent(BaseModel):
    """Something that happened to one node; ``time`` is seconds since the run started."""

    kind: EventKind
    node: str
    tool: str
    time: float
    elapsed: float | None = None
    fraction: float | None = None
    message: str = ""


class NodeFailure(BaseModel):
    node: str
    tool: str
    kind: Literal["failed", "skipped", "cancelled"]
    error: str


class RunError(RuntimeError):
    """The program's output could not be made; says which node and why."""

    def __init__(self, failure: NodeFailure) -> None:
        self.failure = failure
        super().__init__(failure.error)


@dataclass
class RunResult:
    output_id: str
    outputs: dict[str, Value] = field(default_factory=dict)
    failures: dict[str, NodeFailure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    executed: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return self.output_id in self.outputs

    @property
    def output(self) -> Value:
        if self.output_id in self.outputs:
            return self.outputs[self.output_id]
        failure = self.failures.get(self.output_id) or next(iter(self.failures.values()), None)
        if failure is None:
            failure = NodeFailure(node=self.output_id, tool="?", kind="failed", error="the output was not produced")
        raise RunError(failure)


def resolve_device(spec: ToolSpec) -> str:
    """Where a tool runs: cuda when it asks for a GPU and one exists, else the CPU."""
    if spec.resources.device != "gpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda:0" if torch.cuda.is_available() else "cpu"


class Executor:
    def __init__(
        self,
        registry: Registry,
        cache: ResultCache | None = None,
        max_workers: int = 2,
        files: ReadPolicy | None = None,
        node_timeout_s: float | None = None,
    ) -> None:
        self.registry = registry
        self.node_timeout_s = node_timeout(node_timeout_s)
        self._abandoned = False  # a node left running past its limit or an interrupt: do not wait for it on close
        self.cache = cache if cache is not None else ResultCache()
        self.max_workers = max_workers
        self.files = files or ReadPolicy()  # what programs may read from disk: nothing unless granted
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="banana-node")

    def close(self) -> None:
        self._pool.shutdown(wait=not self._abandoned, cancel_futures=self._abandoned)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_deadline(self, running: dict[Future[Any], str], started_at: dict[str, float]) -> float | None:
        """Seconds until the earliest running node is overdue (None: no limit, wait for the next one to finish)."""
        if self.node_timeout_s is None:
            return None
        starts = [started_at[n] for n in running.values() if n in started_at]
        if not starts:
            return GRACE_S  # none has begun yet (waiting for a device lock): look again soon
        return max(0.0, min(starts) + self.node_timeout_s + GRACE_S - time.monotonic())

    def _overdue(self, running: dict[Future[Any], str], started_at: dict[str, float]) -> list[Future[Any]]:
        if self.node_timeout_s is None:
            return []
        now = time.monotonic()
        limit = self.node_timeout_s + GRACE_S
        return [f for f, n in running.items() if not f.done() and n in started_at and now - started_at[n] > limit]

    def _lock_for(self, spec: ToolSpec, device: str) -> threading.Lock | None:
        key = device if spec.resources.device == "gpu" else (f"tool:{spec.name}" if spec.resources.serial else None)
        if key is None:
            return None
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def run(
        self,
        valid: ValidProgram,
        inputs: dict[str, Value],
        on_event: Callable[[NodeEvent], None] | None = None,
        cancel: threading.Event | None = None,
        exclude: dict[str, list[str]] | None = None,
    ) -> RunResult:
        """Run the nodes the output needs; never raises for a failing tool (see RunResult).

        ``exclude``: node id -> implementations its (routed) tool must not choose (:func:`banana.experts.manager.excluding`).

        Raises before any node starts when the inputs do not fit, or when the set-up cannot run the
        program at all (:class:`banana.agent.preflight.NeedsWeights`).
        """
        for name in valid.inputs_used:
            if name not in inputs:
                raise ValueError(f"the program reads ${name} but no such input was given (got: {', '.join(inputs) or 'none'})")
            want = valid.types[name]
            if inputs[name].type_name != want:
                raise ValueError(f"input ${name} must be a {want}, got a {inputs[name].type_name}")
        preflight(valid, self.registry)
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        emit_lock = threading.Lock()

        def emit(kind: EventKind, node: str, tool: str, **kw: Any) -> None:
            if on_event is not None:
                ev = NodeEvent(kind=kind, node=node, tool=tool, time=time.perf_counter() - t0, **kw)
                with emit_lock:
                    on_event(ev)

        program = valid.program
        nodes = {n.id: n for n in program.nodes}
        exclude = {n: sorted(set(names)) for n, names in (exclude or {}).items() if n in nodes and names}
        result = RunResult(output_id=valid.output)
        values: dict[str, Value] = dict(inputs)
        keys: dict[str, str] = {name: f"input:{v.content_hash}" for name, v in inputs.items()}
        deps = {n: {p for p in valid.graph.predecessors(n)} for n in valid.order}
        waiting = set(valid.order)
        running: dict[Future[tuple[Value, float]], str] = {}
        pending: dict[str, tuple[ToolSpec, dict[str, Any], str | None, dict[str, str]]] = {}  # running node -> what caching it needs

        for n in valid.order:
            emit("queued", n, nodes[n].tool)

        def prepare(node_id: str) -> tuple[ToolSpec, dict[str, Value], dict[str, Any], str | None, dict[str, str]]:
            """The node's tool, ports, literals, cache key (None: the tool opted out) and the digests of files it reads."""
            node = nodes[node_id]
            spec = self.registry.get(node.tool)
            refs = {k: ref_name(v) for k, v in node.args.items() if k in spec.inputs and is_ref(v)}
            literals = spec.args_model.model_validate({k: v for k, v in node.args.items() if k in spec.arg_names}).model_dump()
            feeds = {k: keys[r] for k, r in refs.items()}
            digests = file_digests(spec, literals, self.files)
            feeds.update({f"file:{k}": d for k, d in digests.items()})  # content, not path
            if node_id in exclude:
                feeds["route:exclude"] = ",".join(exclude[node_id])  # another expert's result is another result
            cacheable = spec.cache and not routed_by_policy(spec.name)  # a learned router's pick is not a function of the inputs
            key = cache_key(spec, literals, feeds, resolve_device(spec)) if cacheable else None
            return spec, {k: values[r] for k, r in refs.items()}, literals, key, digests

        def files_unchanged(spec: ToolSpec, literals: dict[str, Any], digests: dict[str, str]) -> bool:
            """Whether the files a node read are still what its key says (one replaced while it ran must not be cached)."""
            if not digests:
                return True
            try:
                return file_digests(spec, literals, self.files) == digests
            except Exception:  # gone or refused now: do not vouch for the result
                return False

        started_at: dict[str, float] = {}  # node -> monotonic time its tool began (after any device lock)

        def call(node_id: str, spec: ToolSpec, ports: dict[str, Value], literals: dict[str, Any]) -> tuple[Value, float]:
            device = resolve_device(spec)
            ctx = ToolContext(
                node_id=node_id,
                device=device,
                on_progress=lambda f, m: emit("progress", node_id, spec.name, fraction=f, message=m),
                cancel=cancel,
                files=self.files,
            )
            lock = self._lock_for(spec, device)
            if lock is not None:
                lock.acquire()
            try:
                ctx.check()
                started_at[node_id] = time.monotonic()
                if self.node_timeout_s is not None:
                    ctx.deadline = started_at[node_id] + self.node_timeout_s
                emit("started", node_id, spec.name)
                start = time.perf_counter()
                with using(self.cache.memo), excluding(spec.name, exclude.get(node_id, ())):  # memo: what it derived before
                    out = spec(ctx, **ports, **literals)
                return out, time.perf_counter() - start
            finally:
                if lock is not None:
                    lock.release()

        def fail(node_id: str, kind: Literal["failed", "skipped", "cancelled"], error: str) -> None:
            result.failures[node_id] = NodeFailure(node=node_id, tool=nodes[node_id].tool, kind=kind, error=error)
            emit(kind, node_id, nodes[node_id].tool, message=error)

        def skip_dependants(node_id: str) -> None:
            for d in valid.graph.successors(node_id):
                if d in waiting:
                    waiting.discard(d)
                    fail(d, "skipped", f"node {d!r} did not run because node {node_id!r} "
                                       f"failed: {result.failures[node_id].error}")
                    skip_dependants(d)

        while waiting or running:
            ready = sorted(n for n in waiting if deps[n] <= values.keys())
            for n in ready:
                waiting.discard(n)
                if cancel.is_set():
                    fail(n, "cancelled", f"node {n!r} was cancelled before it started")
                    continue
                try:
                    spec, ports, literals, key, digests = prepare(n)
                    hit = None if key is None else self.cache.get(key, spec.output)
                except Exception as exc:  # configuration (e.g. a backbone salt) or a cache read: this node fails, not the run
                    fail(n, "failed", f"node {n!r} ({nodes[n].tool}) could not start: {type(exc).__name__}: {exc}")
                    skip_dependants(n)
                    continue
                if hit is not None:
                    keys[n] = key  # type: ignore[assignment]  # a hit has a key
                    values[n] = result.outputs[n] = hit
                    result.cached.add(n)
                    emit("cached", n, spec.name, elapsed=0.0)
                    continue
                fut = self._pool.submit(call, n, spec, ports, literals)
                running[fut] = n
                pending[n] = (spec, literals, key, digests)
            if not running:
                if waiting and not any(deps[n] <= values.keys() for n in waiting):
                    break  # the rest wait on failures (already skipped) — nothing can run
                continue
            try:
                done, _ = wait(running, timeout=self._next_deadline(running, started_at), return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # Ctrl-C: running tools stop at their next check; nothing is written
                cancel.set()
                wait(running, timeout=GRACE_S)
                self._abandoned = self._abandoned or any(not f.done() for f in running)
                raise
            for fut in self._overdue(running, started_at):  # past the limit and not checking: stop waiting for it
                n = running.pop(fut)
                pending.pop(n)
                self._abandoned = True
                fail(n, "failed", f"node {n!r} ({nodes[n].tool}) ran past its time limit of {self.node_timeout_s:g} s")
                skip_dependants(n)
            for fut in done:
                if fut not in running:
                    continue
                n = running.pop(fut)
                spec, literals, key, digests = pending.pop(n)
                try:
                    out, elapsed = fut.result()
                except TimedOut:
                    fail(n, "failed", f"node {n!r} ({nodes[n].tool}) ran past its time limit of {self.node_timeout_s:g} s")
                    skip_dependants(n)
                    continue
                except Cancelled:
                    fail(n, "cancelled", f"node {n!r} ({nodes[n].tool}) was cancelled while running")
                    skip_dependants(n)
                    continue
                except Exception as exc:  # a tool's failure stops only its dependants
                    fail(n, "failed", f"node {n!r} ({nodes[n].tool}) failed: {type(exc).__name__}: {exc}")
                    skip_dependants(n)
                    continue
                values[n] = result.outputs[n] = out
                result.timings[n] = elapsed
                result.executed.append(n)
                if key is None or not files_unchanged(spec, literals, digests):
                    keys[n] = f"value:{out.content_hash}"  # not cached: what it feeds is keyed on what it made
                else:
                    keys[n] = key
                    try:
                        self.cache.put(key, out)
                    except Exception as exc:  # a full or read-only cache folder, an unsavable value: keep the result anyway
                        log.warning("could not cache node %r: %s: %s", n, type(exc).__name__, exc)
                emit("finished", n, nodes[n].tool, elapsed=elapsed)
        for n in sorted(waiting):
            fail(n, "cancelled" if cancel.is_set() else "skipped", f"node {n!r} did not run")
        result.wall = time.perf_counter() - t0
        return result
