"""Real backbones for tests of the generative seam: the classical fallback, or a tiny random diffusers pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from banana.tools.backbone import Backbone, BackboneConfig, load_backbone, set_backbone


def classical() -> Backbone:
    """The default, non-generative backbone (what runs with no weights configured)."""
    return load_backbone(BackboneConfig())


def tiny_diffusion(folder: Path) -> Backbone:
    """A real diffusers backbone over a tiny randomly initialised SD-inpaint pipeline (2 steps, 64 px)."""
    from banana.backbone import tiny

    weights = folder / "sd-inpaint"
    if not (weights / "model_index.json").is_file():
        tiny.save("sd-inpaint", weights)
    return load_backbone(BackboneConfig(kind="diffusers", weights=weights, steps=2, resolution=64))


@contextmanager
def installed(backbone: Backbone) -> Iterator[Backbone]:
    set_backbone(backbone)
    try:
        yield backbone
    finally:
        set_backbone(None)
