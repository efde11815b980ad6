"""The backbone seam: the one interface generative tools call, and how one is chosen.

Experts (``replace``, prompt-driven ``replace_background``) and the ``refine``
tool call :func:`get_backbone` rather than importing ``backbone/``, so the
arrows keep pointing one way. Implementations register under the entry-point
group ``banana.backbones``; :class:`BackboneConfig` picks one (default: the
classical no-weights fallback, which says so in every result's metadata).
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from tools.values import Image, Mask

ENTRY_POINT_GROUP = "banana.backbones"


class BackboneConfig(BaseModel):
    """Which backbone to use and how. From code, or the ``BANANA_BACKBONE*`` environment variables."""

    kind: str = Field(default="classical", description="entry-point name in banana.backbones")
    pipeline: str | None = Field(default=None, description="e.g. sd-inpaint, sdxl-inpaint, flux-kontext, instruct-pix2pix")
    weights: Path | str | None = Field(default=None, description="a local folder, or a hub id only when the user sets one")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    offload: Literal["none", "model", "sequential"] = "none"
    steps: int = Field(default=28, ge=1, le=200)
    adapters: dict[str, Path] = Field(default_factory=dict, description="LoRA expert name -> local weights file")

    @classmethod
    def from_env(cls) -> BackboneConfig:
        env = {
            "kind": os.environ.get("BANANA_BACKBONE"),
            "pipeline": os.environ.get("BANANA_BACKBONE_PIPELINE"),
            "weights": os.environ.get("BANANA_BACKBONE_WEIGHTS"),
            "device": os.environ.get("BANANA_DEVICE"),
            "dtype": os.environ.get("BANANA_DTYPE"),
            "offload": os.environ.get("BANANA_OFFLOAD"),
        }
        return cls(**{k: v for k, v in env.items() if v})


@runtime_checkable
class Backbone(Protocol):
    """What every backbone offers. Results carry ``meta['backbone']`` naming what really ran."""

    name: str
    generative: bool  # False for the classical fallback: it cannot invent content from a prompt

    def refine(
        self,
        image: Image,
        prompt: str = "",
        strength: float = 0.3,
        keep_mask: Mask | None = None,
        seed: int = 0,
        adapters: dict[str, float] | None = None,
    ) -> Image: ...

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0) -> Image: ...

    def edit(self, image: Image, instruction: str, seed: int = 0) -> Image: ...


class BackboneError(RuntimeError):
    pass


_lock = threading.Lock()
_current: Backbone | None = None


def load_backbone(config: BackboneConfig) -> Backbone:
    """Build the backbone ``config.kind`` names, from the ``banana.backbones`` entry points."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if config.kind not in found:
        raise BackboneError(f"unknown backbone {config.kind!r}; installed: {', '.join(sorted(found)) or 'none'}")
    factory: Any = found[config.kind].load()
    return factory(config)


def get_backbone() -> Backbone:
    """The process's backbone (built on first use from the environment's config)."""
    global _current
    with _lock:
        if _current is None:
            _current = load_backbone(BackboneConfig.from_env())
        return _current


def set_backbone(backbone: Backbone | None) -> None:
    """Install a backbone for this process (None: rebuild from config on next use)."""
    global _current
    with _lock:
        _current = backbone
