"""The generative tools ``insert`` and ``edit``: they draw what the picture does not contain, so they need diffusion weights.

Both run on the configured backbone (banana.tools.backbone). They are marked
``needs="generative"``: with the classical fallback a program that uses them stops
before any node runs (banana.agent.preflight), instead of returning a look-alike.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from banana.tools.backbone import BackboneError, BackboneMeta, fingerprint, get_backbone
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image, Mask

__all__ = ["edit", "insert"]

Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
GPU = Resources(device="gpu", memory_mb=4096, serial=True)  # as refine: one diffusion pipeline at a time


def _generated(result: Image, tool_name: str) -> Image:
    """The result, unless the backbone fell back to classical pixels (e.g. edit-only weights asked to inpaint)."""
    record = BackboneMeta.read(result.meta)
    if record is not None and not record.generative:
        raise BackboneError(f"{tool_name}: the configured backbone could not draw it ({record.note}); "
                            "configure an inpainting pipeline (BANANA_BACKBONE_PIPELINE=sd-inpaint, sdxl-inpaint or flux-kontext)")
    return result


@tool(role="object", resources=GPU, salt=fingerprint, needs="generative", notes=(
    'adding a new object: region (where: a position, or a relation to detect(the thing it goes on)) then insert; '
    'never replace the thing it sits on',
))
def insert(
    image: Image,
    mask: Mask,
    *,
    prompt: Annotated[str, Field(min_length=1, max_length=300)],
    seed: Seed = 0,
    ctx: ToolContext,
) -> Image:
    """Add a new object where the mask is (e.g. from region), drawn from the prompt; pixels outside the mask stay exact."""
    result = get_backbone().inpaint(image, mask, prompt=prompt, seed=seed, progress=ctx.progress)
    return _generated(result, "insert")


@tool(role="style", resources=GPU, salt=fingerprint, needs="generative", notes=(
    'relight, weather, time of day, season, pose, expression, age, material and state changes ("make it night", "make the table marble")',
    'instruction is the request as a short imperative; a mask only when the user says only that part',
))
def edit(
    image: Image,
    mask: Mask | None = None,
    *,
    instruction: Annotated[str, Field(min_length=1, max_length=300)],
    seed: Seed = 0,
    ctx: ToolContext,
) -> Image:
    """Follow an instruction (relight, weather, time of day, pose, material), only inside the mask when one is given."""
    keep = None if mask is None else Mask(1.0 - mask.alpha)
    result = get_backbone().edit(image, instruction, seed=seed, keep_mask=keep, progress=ctx.progress)
    return _generated(result, "edit")
