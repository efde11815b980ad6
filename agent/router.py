"""The learned router: which implementation of a tool to run, per (tool, context bucket), from traces.

Why: the fixed cost order cannot know that FSR fills a mid-size hole better than PatchMatch
on a smooth wall, or that a bilateral filter is enough for light grain. Each arm
(tool, bucket, implementation) keeps a Beta posterior on success (the node's hard checks
passed and, when a reference was known, the result was close to it) and its latencies.
Utility = success - ``latency_weight`` * log(1 + median seconds).

- Exploitation (the default): the posterior mean; with no statistics for a bucket the router
  says nothing and the fixed cost order decides (today's costs are the prior; the cheapest
  implementation also gets one pseudo-success).
- Exploration (self-play only): Thompson sampling from the posteriors.
- Versions: statistics of an implementation whose version changed are ignored (reset).
Statistics live in the traces database (:mod:`banana.agent.traces`); loading them once
makes a choice a few dictionary look-ups.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from banana.agent.traces import TraceStore
from banana.experts.manager import Implementation, implementations, set_policy

LATENCY_WEIGHT = 0.1
PRIOR_SUCCESS = 1.0  # pseudo-successes for the cheapest implementation by the fixed costs
MAX_DISTANCE = 1.0  # distance to a known reference, relative to its pass line (self-play), above which an attempt fails


@dataclass
class Arm:
    attempts: int = 0
    passes: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.attempts - self.passes

    @property
    def median_latency(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None


def current_version(tool: str, impl: str) -> str | None:
    return next((i.version for i in implementations(tool) if i.name == impl), None)


class Router:
    """A routing policy for :func:`banana.experts.manager.set_policy`."""

    name = "router"

    def __init__(
        self,
        store: TraceStore | None = None,
        explore: bool = False,
        latency_weight: float = LATENCY_WEIGHT,
        max_distance: float = MAX_DISTANCE,
        seed: int | None = None,
    ) -> None:
        self.explore = explore
        self.latency_weight = latency_weight
        self.max_distance = max_distance
        self.arms: dict[tuple[str, str, str], Arm] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        if store is not None:
            self.load(store)

    def load(self, store: TraceStore) -> None:
        """Add what the traces say (arms of an implementation whose version changed are skipped: reset)."""
        for tool, impl, version, bucket, n, ok, latencies in store.arm_stats(self.max_distance):
            if current_version(tool, impl) != version:
                continue
            with self._lock:
                arm = self.arms.setdefault((tool, bucket, impl), Arm())
                arm.attempts += n
                arm.passes += ok
                arm.latencies.extend(latencies)

    def observe(
        self, tool: str, impl: str, version: str, bucket: str, passed: bool, latency: float | None, distance: float | None = None
    ) -> None:
        """Count one attempt (ignored when the implementation's version is no longer the current one)."""
        if current_version(tool, impl) != version:
            return
        ok = passed and (distance is None or distance <= self.max_distance)
        with self._lock:
            arm = self.arms.setdefault((tool, bucket, impl), Arm())
            arm.attempts += 1
            arm.passes += int(ok)
            if latency is not None:
                arm.latencies.append(float(latency))

    def utilities(self, tool: str, names: list[str], costs: dict[str, float], bucket: str, sample: bool) -> dict[str, float]:
        """Each implementation's utility in this bucket (posterior mean, or a Thompson draw when ``sample``)."""
        cheapest = min(names, key=lambda n: costs.get(n, 0.0))
        with self._lock:
            arms = {n: self.arms.get((tool, bucket, n)) for n in names}
            known = [a.median_latency for a in arms.values() if a is not None and a.latencies]
            fallback = statistics.median(known) if known else 0.0  # an untried arm: assume a typical latency
            out = {}
            for n, arm in arms.items():
                alpha = 1.0 + (arm.passes if arm else 0) + (PRIOR_SUCCESS if n == cheapest else 0.0)
                beta = 1.0 + (arm.failures if arm else 0)
                p = self._rng.betavariate(alpha, beta) if sample else alpha / (alpha + beta)
                lat = arm.median_latency if arm is not None and arm.latencies else fallback
                out[n] = p - self.latency_weight * math.log1p(lat or 0.0)
        return out

    def __call__(self, tool: str, options: list[Implementation], costs: dict[str, float], bucket: str) -> str | None:
        names = [o.name for o in options]
        if len(names) < 2:
            return None
        if not self.explore and not any((tool, bucket, n) in self.arms for n in names):
            return None  # nothing learned here: the fixed cost order decides
        u = self.utilities(tool, names, costs, bucket, sample=self.explore)
        return max(names, key=lambda n: (u[n], -costs.get(n, 0.0)))

    def rules(self) -> list[dict[str, Any]]:
        """One row per tool x implementation x bucket, with the exploit choice of each bucket marked and a readable rule."""
        with self._lock:
            keys = sorted(self.arms)
        groups: dict[tuple[str, str], list[str]] = {}
        for tool, bucket, impl in keys:
            groups.setdefault((tool, bucket), []).append(impl)
        rows = []
        for (tool, bucket), names in sorted(groups.items()):
            order = {i.name: k for k, i in enumerate(implementations(tool))}
            u = self.utilities(tool, names, {n: float(order.get(n, 99)) for n in names}, bucket, sample=False)
            best = max(names, key=lambda n: u[n])
            for n in names:
                arm = self.arms[(tool, bucket, n)]
                lat = arm.median_latency
                said = f"{n} ({arm.passes}/{arm.attempts} pass" + (f", {lat:.2f} s)" if lat is not None else ")")
                rows.append({
                    "tool": tool, "bucket": bucket, "impl": n, "version": current_version(tool, n), "attempts": arm.attempts,
                    "passed": arm.passes, "success_rate": round(arm.passes / arm.attempts, 3) if arm.attempts else None,
                    "median_latency_s": round(lat, 4) if lat is not None else None, "utility": round(u[n], 4), "chosen": n == best,
                    "rule": f"{tool}, {bucket or 'any context'}: {said}" + ("" if n == best else f" (not chosen: {best} is better)"),
                })  # fmt: skip
        return rows


@contextmanager
def routing(router: Router | None) -> Iterator[Router | None]:
    """Install ``router`` as the routing policy for the duration (None: the fixed cost order)."""
    previous = set_policy(router)
    try:
        yield router
    finally:
        set_policy(previous)
