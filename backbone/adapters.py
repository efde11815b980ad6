"""LoRA experts on a diffusers pipeline (through peft): load by name, weigh per call, per step if asked.

Adapters stay loaded but are switched off between calls, so a call that names none
gets exactly the base model, and a weight of 0 is exactly "off". A weight may be a
schedule: a list of values spread evenly over the denoising steps (``[1.0, 0.0]``
fades an identity LoRA out as the picture settles), applied through
``callback_on_step_end``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from banana.tools.backbone import BackboneError

Weight = float | Sequence[float]
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


class Adapters:
    """The LoRA experts a config names, loaded once into the pipeline's denoiser."""

    def __init__(self, pipe: Any, files: Mapping[str, Path]) -> None:
        self.names = sorted(files)
        for name in self.names:
            path = Path(files[name]).expanduser()
            if not path.is_file():
                raise BackboneError(f"LoRA adapter {name!r}: no weights file at {path}")
            try:
                pipe.load_lora_weights(str(path), adapter_name=name)
            except Exception as exc:  # wrong base model, not a LoRA file: name the adapter, keep the cause
                raise BackboneError(f"LoRA adapter {name!r} ({path}) could not be loaded into the pipeline: {exc}") from exc
        if self.names:
            pipe.disable_lora()

    def activate(self, pipe: Any, weights: Mapping[str, Weight] | None) -> StepCallback | None:
        """Switch on the named adapters at their weights for one call; returns the per-step callback a schedule needs."""
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise BackboneError(f"unknown LoRA adapter(s) {', '.join(map(repr, unknown))}; configured: "
                                f"{', '.join(self.names) or 'none (set BANANA_BACKBONE_ADAPTERS=name=/path/file.safetensors)'}")
        if not weights:
            if self.names:
                pipe.disable_lora()
            return None
        names = sorted(weights)
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=[weight_at(weights[n], 0, 1) for n in names])
        if all(isinstance(weights[n], (int, float)) for n in names):
            return None

        def step_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            # Called at the end of step ``step``: set the weights the next step uses.
            total = int(getattr(p, "num_timesteps", 0) or step + 2)
            p.set_adapters(names, adapter_weights=[weight_at(weights[n], step + 1, total) for n in names])
            return kwargs

        return step_end

    def release(self, pipe: Any) -> None:
        """Back to the base model after a call."""
        if self.names:
            pipe.disable_lora()

    def unload(self, pipe: Any) -> None:
        """Remove every adapter from the pipeline, freeing its memory."""
        if self.names:
            pipe.unload_lora_weights()
        self.names = []


def weight_at(weight: Weight, step: int, total: int) -> float:
    """A constant weight, or a schedule's value at ``step`` of ``total`` (linear between its points)."""
    if isinstance(weight, (int, float)):
        return float(weight)
    points = [float(w) for w in weight]
    if not points:
        raise BackboneError("an adapter weight schedule needs at least one value")
    if len(points) == 1 or total <= 1:
        return points[0]
    return float(np.interp(step / (total - 1), np.linspace(0.0, 1.0, len(points)), points))
