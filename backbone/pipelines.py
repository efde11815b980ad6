"""The diffusers pipeline kinds Banana knows: which class loads the weights, which one does each operation.

One weights folder serves every operation its model can do: derived pipelines are
built with ``from_pipe`` and share the loaded modules (no second copy in memory).
An operation a kind cannot do is ``None`` here; the backbone then says so rather
than imitating it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from banana.tools.backbone import BackboneError

Family = Literal["sd", "sdxl", "flux", "ip2p"]


@dataclass(frozen=True)
class PipelineKind:
    name: str
    family: Family
    load: str  # the diffusers class that loads the weights
    refine: str | None  # class that refines at a strength, or None
    refine_masked: bool  # refine through an inpaint class (repaint mask = not kept) rather than img2img
    inpaint: str | None
    edit: str | None  # instruction-following edit, or None
    resolution: int  # native longest side
    multiple: int  # sides must divide by this: the VAE factor, times 2 for FLUX's packed latents
    cuda_dtype: Literal["float16", "bfloat16"]
    model_classes: tuple[str, ...]  # model_index.json ``_class_name`` values that mean this kind
    memory: str  # approximate GPU memory, from the model sizes (README, Backbone)


KINDS: dict[str, PipelineKind] = {
    k.name: k
    for k in (
        PipelineKind("sd-inpaint", "sd", "StableDiffusionInpaintPipeline", "StableDiffusionInpaintPipeline", True,
                     "StableDiffusionInpaintPipeline", None, 512, 8, "float16",
                     ("StableDiffusionInpaintPipeline",), "~4 GB fp16"),
        PipelineKind("sd-img2img", "sd", "StableDiffusionImg2ImgPipeline", "StableDiffusionImg2ImgPipeline", False,
                     "StableDiffusionInpaintPipeline", None, 512, 8, "float16",
                     ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"), "~4 GB fp16"),
        PipelineKind("sdxl-inpaint", "sdxl", "StableDiffusionXLInpaintPipeline", "StableDiffusionXLInpaintPipeline", True,
                     "StableDiffusionXLInpaintPipeline", None, 1024, 8, "float16",
                     ("StableDiffusionXLInpaintPipeline", "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
                     "~10 GB fp16"),
        PipelineKind("flux-kontext", "flux", "FluxKontextPipeline", "FluxKontextInpaintPipeline", True,
                     "FluxKontextInpaintPipeline", "FluxKontextPipeline", 1024, 16, "bfloat16",
                     ("FluxKontextPipeline", "FluxKontextInpaintPipeline"), "~24+ GB bf16, less with offload"),
        PipelineKind("instruct-pix2pix", "ip2p", "StableDiffusionInstructPix2PixPipeline", None, False,
                     None, "StableDiffusionInstructPix2PixPipeline", 512, 8, "float16",
                     ("StableDiffusionInstructPix2PixPipeline",), "~4 GB fp16"),
    )
}


def kind_named(name: str) -> PipelineKind:
    if name not in KINDS:
        raise BackboneError(f"unknown diffusers pipeline {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def detect_kind(folder: Path) -> PipelineKind:
    """The kind a local weights folder holds, read from its ``model_index.json``."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise BackboneError(f"{folder} has no model_index.json, so it is not a diffusers pipeline folder; "
                            f"set BANANA_BACKBONE_PIPELINE to one of: {', '.join(KINDS)}")
    class_name = json.loads(index.read_text()).get("_class_name", "")
    for kind in KINDS.values():
        if class_name in kind.model_classes:
            return kind
    raise BackboneError(f"{folder} holds a {class_name or 'unnamed'} pipeline, which Banana cannot use as a backbone; "
                        f"supported: {', '.join(c for k in KINDS.values() for c in k.model_classes)}")
