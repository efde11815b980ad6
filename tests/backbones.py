"""Stand-in backbones for the generative seam, so object and background tests do not depend on backbone/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from tools.backbone import Backbone, set_backbone
from tools.values import Image, Mask


class FlatBackbone:
    """Non-generative, like the classical fallback: a tool must label its result a fallback."""

    name = "flat"
    generative = False

    def refine(self, image: Image, prompt: str = "", strength: float = 0.3, keep_mask: Mask | None = None, seed: int = 0,
               adapters: dict[str, float] | None = None) -> Image:
        return image

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0) -> Image:
        raise AssertionError("a non-generative backbone's inpaint must not be used to invent content")

    def edit(self, image: Image, instruction: str, seed: int = 0, keep_mask: Mask | None = None) -> Image:
        return image


class PaintingBackbone(FlatBackbone):
    """'Generative': paints the whole picture one colour, so a test can see where its output was used."""

    name = "painter"
    generative = True
    color = (0, 200, 0)

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0) -> Image:
        self.prompts.append(prompt)
        return Image(np.full_like(image.pixels, self.color), meta={"backbone": self.name, "generative": True})


@contextmanager
def installed(backbone: Backbone) -> Iterator[Backbone]:
    set_backbone(backbone)
    try:
        yield backbone
    finally:
        set_backbone(None)
