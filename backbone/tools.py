"""The ``refine`` tool: the backbone's finalize step, registered through the ``banana.tools`` entry point ``backbone``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from banana.tools.backbone import fingerprint, get_backbone
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image, Mask

AdapterName = Annotated[str, Field(min_length=1, max_length=40)]
AdapterWeight = Annotated[float, Field(ge=-2.0, le=2.0)]


# memory_mb: SD 1.5 in fp16 (~4 GB); SDXL needs ~10 GB and FLUX.1 Kontext ~24 GB (README, Backbone).
@tool(role="finalize", resources=Resources(device="gpu", memory_mb=4096, serial=True), salt=fingerprint)
def refine(
    image: Image,
    keep: Mask | None = None,
    *,
    prompt: Annotated[str, Field(max_length=300)] = "",
    strength: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3,
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0,
    adapters: dict[AdapterName, AdapterWeight] = {},  # noqa: B006 - validated per call into a fresh dict, never mutated
    ctx: ToolContext,
) -> Image:
    """Finish the picture with the diffusion backbone (or the labelled classical fallback); pixels under keep stay exact."""
    backbone = get_backbone()
    return backbone.refine(image, prompt=prompt, strength=strength, keep_mask=keep, seed=seed, adapters=adapters, progress=ctx.progress)
