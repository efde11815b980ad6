"""The expert manager: lazy model loading under a memory budget, device choice, threads, routing.

Models: a loader is declared once with :func:`model` and loaded on first use, once
per process (thread-safe); when the loaded models' declared memory exceeds the
budget, the least recently used ones are dropped. Device: ``cuda`` when a loader
asks for a GPU and torch sees one, else ``cpu``. Threads: one knob, applied to
torch, OpenCV and onnxruntime sessions, so two cores are not oversubscribed.

Routing: several implementations may serve one tool. Each declares when it
applies and what it costs for the given inputs, and a version; :func:`context`
describes a tool's inputs (features + a readable bucket). :func:`choose` picks the
cheapest that applies unless a policy is installed (:func:`set_policy`, e.g. the
learned router in ``banana.agent.router``), and records the decision. :func:`excluding`
takes implementations out of the choice for one tool call (the loop's "other implementation" fix).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError


class ManagerConfig(BaseModel):
    budget_mb: int = Field(default=6000, ge=0)
    threads: int = Field(default=1, ge=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # mps: the experts here have no Metal path, they use the CPU

    @classmethod
    def from_env(cls) -> ManagerConfig:
        """From BANANA_EXPERT_BUDGET_MB, BANANA_THREADS, BANANA_DEVICE; a bad value names its variable."""
        names = {"budget_mb": "BANANA_EXPERT_BUDGET_MB", "threads": "BANANA_THREADS", "device": "BANANA_DEVICE"}
        values = {field: os.environ[var] for field, var in names.items() if os.environ.get(var)}
        try:
            return cls(**values)
        except ValidationError as exc:
            bad = ", ".join(f"{names[str(e['loc'][0])]}={e['input']!r}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"expert manager settings: {bad}") from None


@dataclass
class ModelSpec:
    name: str
    load: Callable[[str], Any]  # device -> loaded model
    memory_mb: int
    wants_gpu: bool


@dataclass
class Loaded:
    model: Any
    device: str
    memory_mb: int
    load_seconds: float


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class ExpertManager:
    def __init__(self, config: ManagerConfig | None = None) -> None:
        self._config = config
        self._specs: dict[str, ModelSpec] = {}
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads: list[str] = []  # names in the order they were loaded (for tests and logs)

    @property
    def config(self) -> ManagerConfig:
        """Read from the environment on first use, not at import (a bad value then fails a tool, not every import)."""
        if self._config is None:
            self._config = ManagerConfig.from_env()
        return self._config

    def declare(self, spec: ModelSpec) -> None:
        self._specs[spec.name] = spec
        self._locks.setdefault(spec.name, threading.Lock())

    def device_for(self, wants_gpu: bool) -> str:
        if self.config.device in ("cpu", "mps") or not wants_gpu:
            return "cpu"
        if self.config.device == "cuda" or cuda_available():
            return "cuda"
        return "cpu"

    def get(self, name: str) -> Any:
        """The loaded model (loading it now if needed)."""
        if name not in self._specs:
            raise KeyError(f"no model named {name!r}; declared: {', '.join(sorted(self._specs))}")
        with self._guard:
            hit = self._loaded.get(name)
            if hit is not None:
                self._loaded.move_to_end(name)
                return hit.model
        with self._locks[name]:
            with self._guard:
                hit = self._loaded.get(name)
                if hit is not None:
                    return hit.model
            spec = self._specs[name]
            device = self.device_for(spec.wants_gpu)
            apply_threads(self.config.threads)
            t = time.perf_counter()
            model = spec.load(device)
            loaded = Loaded(model, device, spec.memory_mb, time.perf_counter() - t)
            with self._guard:
                self._loaded[name] = loaded
                self.loads.append(name)
                self._evict(keep=name)
            return model

    def _evict(self, keep: str) -> None:
        while sum(x.memory_mb for x in self._loaded.values()) > self.config.budget_mb and len(self._loaded) > 1:
            victim = next(n for n in self._loaded if n != keep)
            del self._loaded[victim]

    def unload(self, name: str) -> None:
        with self._guard:
            self._loaded.pop(name, None)

    def loaded(self) -> dict[str, Loaded]:
        with self._guard:
            return dict(self._loaded)


def apply_threads(n: int) -> None:
    """One thread count for every runtime in the process."""
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    try:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    except ImportError:
        pass


_manager = ExpertManager()


def manager() -> ExpertManager:
    return _manager


def model(name: str, memory_mb: int, wants_gpu: bool = False) -> Callable[[Callable[[str], Any]], Callable[[], Any]]:
    """Declare a lazily loaded model; the decorated loader becomes a getter: ``get_face_mesh()``."""

    def wrap(load: Callable[[str], Any]) -> Callable[[], Any]:
        _manager.declare(ModelSpec(name, load, memory_mb, wants_gpu))

        def get() -> Any:
            return _manager.get(name)

        get.__name__ = load.__name__
        get.__doc__ = load.__doc__
        return get

    return wrap


# ---------------------------------------------------------------- routing


@dataclass
class Implementation:
    tool: str
    name: str
    run: Callable[..., Any]
    applies: Callable[..., bool]
    cost: Callable[..., float]
    version: str = "1"  # bump when its output changes: a learned router forgets what it knew about the old one


@dataclass
class Decision:
    tool: str
    chosen: str
    costs: dict[str, float] = field(default_factory=dict)  # every applicable implementation's cost
    version: str = "1"
    bucket: str = ""  # the context bucket a learned router keys on (see :func:`context`)
    features: dict[str, float] = field(default_factory=dict)
    policy: str = "cost"  # "cost": the fixed order; otherwise the name of the policy that chose
    excluded: list[str] = field(default_factory=list)  # applicable implementations left out (see :func:`excluding`)

    def as_meta(self) -> dict[str, Any]:
        return {"tool": self.tool, "expert": self.chosen, "costs": {k: round(v, 4) for k, v in self.costs.items()},
                "version": self.version, "bucket": self.bucket, "features": self.features, "policy": self.policy,
                "excluded": self.excluded}


# A policy sees the tool, the applicable implementations, their costs and the context bucket, and
# names one of them, or returns None to keep the fixed cost order.
Policy = Callable[[str, list[Implementation], dict[str, float], str], str | None]

_routes: dict[str, list[Implementation]] = {}
_contexts: dict[str, Callable[..., tuple[dict[str, float], str]]] = {}
_policy: Policy | None = None
_excluded: ContextVar[frozenset[tuple[str, str]]] = ContextVar("banana_excluded_implementations", default=frozenset())


def implements(
    tool: str,
    name: str,
    applies: Callable[..., bool] = lambda **_: True,
    cost: Callable[..., float] = lambda **_: 1.0,
    version: str = "1",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare one implementation of a tool, with when it applies, what it costs and its version."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        impls = [i for i in _routes.get(tool, []) if i.name != name]  # the same name again replaces it (a reload, a plug-in)
        _routes[tool] = [*impls, Implementation(tool, name, fn, applies, cost, version)]
        return fn

    return wrap


def context(tool: str) -> Callable[[Callable[..., tuple[dict[str, float], str]]], Callable[..., tuple[dict[str, float], str]]]:
    """Declare how a routed tool's inputs are described: ``fn(**inputs) -> (features, bucket)``.

    Features are numbers recorded in traces; the bucket is a short readable label
    ("hole half-width > 12 px") that a learned router keeps statistics for.
    """

    def wrap(fn: Callable[..., tuple[dict[str, float], str]]) -> Callable[..., tuple[dict[str, float], str]]:
        _contexts[tool] = fn
        return fn

    return wrap


def set_policy(policy: Policy | None) -> Policy | None:
    """Install a routing policy (None: the fixed cost order); returns the previous one."""
    global _policy
    previous, _policy = _policy, policy
    return previous


@contextmanager
def excluding(tool: str, names: Iterable[str]) -> Iterator[None]:
    """Within the block (this thread or task only), :func:`choose` leaves these implementations of ``tool`` out.

    Why: when a routed node fails a hard check, the loop runs it again without the implementation that
    failed; the installed policy (or the fixed order) picks among the rest. Scoped to a context, not
    global, so the executor can apply it to one node while other nodes run concurrently.
    """
    token = _excluded.set(_excluded.get() | {(tool, n) for n in names})
    try:
        yield
    finally:
        _excluded.reset(token)


def choose(tool: str, **inputs: Any) -> tuple[Implementation, Decision]:
    """The implementation of ``tool`` for these inputs: the installed policy's pick, else the cheapest that applies."""
    applicable = [impl for impl in _routes.get(tool, []) if impl.applies(**inputs)]
    excluded = sorted(i.name for i in applicable if (tool, i.name) in _excluded.get())
    options = [impl for impl in applicable if impl.name not in excluded]
    if not options:
        names = ", ".join(i.name for i in _routes.get(tool, [])) or "none"
        left_out = f"; excluded: {', '.join(excluded)}" if excluded else ""
        raise LookupError(f"no expert for {tool!r} applies to these inputs (declared: {names}{left_out})")
    costs = {impl.name: float(impl.cost(**inputs)) for impl in options}
    features, bucket = _contexts[tool](**inputs) if tool in _contexts else ({}, "")
    best, how = min(options, key=lambda impl: costs[impl.name]), "cost"
    policy = _policy
    if policy is not None:
        pick = policy(tool, options, costs, bucket)
        if pick is not None and pick not in costs:  # a policy naming an implementation that does not apply: the fixed order
            pick = None
        if pick is not None and pick != best.name:
            best, how = next(i for i in options if i.name == pick), getattr(policy, "name", "policy")
        elif pick is not None:
            how = getattr(policy, "name", "policy")
    return best, Decision(tool, best.name, costs, best.version, bucket, features, how, excluded)


def routed_by_policy(tool: str) -> bool:
    """Whether an installed policy may pick ``tool``'s implementation: its result then depends on more than its
    inputs (what the router has learned, its exploration), so the executor does not cache it."""
    return _policy is not None and len(_routes.get(tool, [])) > 1


def implementations(tool: str) -> list[Implementation]:
    return list(_routes.get(tool, []))
