"""The planner: instruction -> validated program, through a backend and a repair loop."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from banana.agent.planner.base import Attempt, Backend, Plan, Planner, PlanningError, PlanRequest
from banana.tools.registry import Registry

BackendName = Literal["embedded", "server"]


def make_planner(
    registry: Registry,
    backend: BackendName | None = None,
    server_url: str | None = None,
    server_model: str | None = None,
    flavor: str | None = None,
    max_repairs: int = 2,
    say: Callable[[str], None] = lambda _: None,
) -> Planner:
    """The configured planner: embedded by default (``BANANA_PLANNER_ADAPTER`` picks another trained adapter);
    ``BANANA_PLANNER=server`` + ``BANANA_PLANNER_URL`` for vLLM."""
    backend = backend or os.environ.get("BANANA_PLANNER", "embedded")  # type: ignore[assignment]
    if backend == "server":
        from banana.agent.planner.http import ServerBackend, ServerConfig

        cfg = ServerConfig(
            base_url=server_url or os.environ.get("BANANA_PLANNER_URL", ServerConfig().base_url),
            model=server_model or os.environ.get("BANANA_PLANNER_MODEL"),
            api_key=os.environ.get("BANANA_PLANNER_API_KEY"),
            flavor=flavor or os.environ.get("BANANA_PLANNER_FLAVOR", "vllm"),  # type: ignore[arg-type]
            surface=os.environ.get("BANANA_PLANNER_SURFACE", "json"),  # type: ignore[arg-type]
            **({"timeout_s": _seconds("BANANA_PLANNER_TIMEOUT")} if os.environ.get("BANANA_PLANNER_TIMEOUT") else {}),
        )
        return Planner(ServerBackend(registry, cfg), registry, max_repairs)
    if backend != "embedded":
        raise ValueError(f"unknown planner backend {backend!r}; use 'embedded' or 'server'")
    from banana.agent.planner.embedded import EmbeddedBackend
    from banana.agent.planner.model import ADAPTER_DIR

    adapter = Path(os.environ.get("BANANA_PLANNER_ADAPTER", ADAPTER_DIR))
    return Planner(EmbeddedBackend(registry, adapter=adapter, say=say), registry, max_repairs)


def _seconds(name: str) -> float:
    raw = os.environ[name]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected seconds, e.g. 30") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: must be more than 0 seconds")
    return value


__all__ = ["Attempt", "Backend", "Plan", "PlanRequest", "Planner", "PlanningError", "make_planner"]
