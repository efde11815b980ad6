"""The one executor: runs a validated program, node by node, as tool calls.

- dependency order; independent branches run concurrently on a thread pool;
  tools that need a GPU (or say they are not thread-safe) hold a lock per device;
- a content-addressed cache (tool, version, salt, literal args and the keys of the
  nodes feeding it, chained back to the input pictures' content hashes), so a
  re-run with one changed node re-executes only that node and its dependants;
- events per node for progress bars and servers;
- a failing node stops only its dependants; finished results stay available;
- cancellation between nodes, and inside tools that call ``ctx.progress``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from banana.agent.preflight import preflight
from banana.agent.program import ValidProgram, is_ref, ref_name
from banana.tools.files import ReadPolicy, file_digests
from banana.tools.registry import Registry
from banana.tools.spec import Cancelled, ToolContext, ToolSpec
from banana.tools.values import Value, value_type

log = logging.getLogger(__name__)
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


class ResultCache:
    """Bounded in-memory LRU of tool results, optionally backed by a folder on disk."""

    def __init__(self, max_bytes: int = 1 << 30, disk: str | Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.disk = Path(disk) if disk else None
        self._items: OrderedDict[str, Value] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if self.disk:
            self.disk.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Value | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return value
        value = self._load(key)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        if value is not None:
            self._remember(key, value)
        return value

    def put(self, key: str, value: Value) -> None:
        self._remember(key, value)
        if self.disk:
            tmp = self.disk / f".{key}.{value.type_name}{value.suffix}.tmp{value.suffix}"
            value.save(tmp)
            tmp.replace(self.disk / f"{key}.{value.type_name}{value.suffix}")

    def _remember(self, key: str, value: Value) -> None:
        size = value.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    def _load(self, key: str) -> Value | None:
        if not self.disk:
            return None
        for path in self.disk.glob(f"{key}.*"):
            if path.name.count(".") != 2:
                continue
            return value_type(path.name.split(".")[1]).load(path)
        return None

    def __len__(self) -> int:
        return len(self._items)


def cache_key(spec: ToolSpec, literals: dict[str, Any], port_keys: dict[str, str]) -> str:
    """A node's key: its tool, version, salt and literals, and the *keys* of what feeds it.

    Keys chain from the session inputs' content hashes (a Merkle chain), so a result
    reloaded from disk in a slightly different form (a 16-bit mask) still matches.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{spec.name}@{spec.version}".encode())
    if spec.salt is not None:
        h.update(spec.salt().encode())
    h.update(json.dumps(literals, sort_keys=True, default=str).encode())
    for name in sorted(port_keys):
        h.update(f"|{name}={port_keys[name]}".encode())
    return h.hexdigest()


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
    ) -> None:
        self.registry = registry
        self.cache = cache if cache is not None else ResultCache()
        self.max_workers = max_workers
        self.files = files or ReadPolicy()  # what programs may read from disk: nothing unless granted
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="banana-node")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
    ) -> RunResult:
        """Run the nodes the output needs; never raises for a failing tool (see RunResult).

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
        result = RunResult(output_id=valid.output)
        values: dict[str, Value] = dict(inputs)
        keys: dict[str, str] = {name: f"input:{v.content_hash}" for name, v in inputs.items()}
        deps = {n: {p for p in valid.graph.predecessors(n)} for n in valid.order}
        waiting = set(valid.order)
        running: dict[Future[tuple[Value, float]], str] = {}

        for n in valid.order:
            emit("queued", n, nodes[n].tool)

        def prepare(node_id: str) -> tuple[ToolSpec, dict[str, Value], dict[str, Any], str]:
            node = nodes[node_id]
            spec = self.registry.get(node.tool)
            refs = {k: ref_name(v) for k, v in node.args.items() if k in spec.inputs and is_ref(v)}
            literals = spec.args_model.model_validate({k: v for k, v in node.args.items() if k in spec.arg_names}).model_dump()
            feeds = {k: keys[r] for k, r in refs.items()}
            feeds.update({f"file:{k}": d for k, d in file_digests(spec, literals, self.files).items()})  # content, not path
            key = cache_key(spec, literals, feeds)
            return spec, {k: values[r] for k, r in refs.items()}, literals, key

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
                emit("started", node_id, spec.name)
                start = time.perf_counter()
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
                    spec, ports, literals, key = prepare(n)
                    keys[n] = key
                    hit = self.cache.get(key)
                except Exception as exc:  # configuration (e.g. a backbone salt) or a cache read: this node fails, not the run
                    fail(n, "failed", f"node {n!r} ({nodes[n].tool}) could not start: {type(exc).__name__}: {exc}")
                    skip_dependants(n)
                    continue
                if hit is not None:
                    values[n] = result.outputs[n] = hit
                    result.cached.add(n)
                    emit("cached", n, spec.name, elapsed=0.0)
                    continue
                fut = self._pool.submit(call, n, spec, ports, literals)
                fut.key = key  # type: ignore[attr-defined]
                running[fut] = n
            if not running:
                if waiting and not any(deps[n] <= values.keys() for n in waiting):
                    break  # the rest wait on failures (already skipped) — nothing can run
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                n = running.pop(fut)
                try:
                    out, elapsed = fut.result()
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
                try:
                    self.cache.put(fut.key, out)  # type: ignore[attr-defined]
                except OSError as exc:  # a full or read-only cache folder must not lose the result
                    log.warning("could not cache node %r: %s", n, exc)
                emit("finished", n, nodes[n].tool, elapsed=elapsed)
        for n in sorted(waiting):
            fail(n, "cancelled" if cancel.is_set() else "skipped", f"node {n!r} did not run")
        result.wall = time.perf_counter() - t0
        return result
