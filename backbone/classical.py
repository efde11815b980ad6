"""The no-weights backbone: classical harmonisation and hole filling, labelled as such in every result.

It is the default, so that Banana runs anywhere; it never claims to be diffusion.
``refine`` blends the edit boundary that ``keep`` marks, ``inpaint`` reconstructs the
hole from its surroundings (the prompt cannot be honoured), and ``edit`` refuses:
following an instruction needs diffusion weights.
"""

from __future__ import annotations

from banana.backbone.fill import fill_holes
from banana.backbone.harmonize import seam_blend
from banana.backbone.pixels import alpha_of, blend, keep_exact
from banana.tools.backbone import BackboneConfig, BackboneError, BackboneMeta, Operation, Progress
from banana.tools.values import Image, Mask

FALLBACK = "classical fallback"
NO_WEIGHTS = "no diffusion weights configured"
HOW_TO_CONFIGURE = (
    "set BANANA_BACKBONE=diffusers, BANANA_BACKBONE_PIPELINE=flux-kontext or instruct-pix2pix and "
    "BANANA_BACKBONE_WEIGHTS=<local folder or hub id> (see the README's Backbone section)"
)


class ClassicalBackbone:
    """Seam blending, guided filtering and classical inpainting behind the Backbone interface."""

    name = "classical"
    generative = False

    def __init__(self, config: BackboneConfig | None = None, reason: str = NO_WEIGHTS) -> None:
        self.config = config or BackboneConfig()
        self.reason = reason  # why the fallback runs, shown in every result's note

    def _meta(self, operation: Operation, detail: str) -> BackboneMeta:
        return BackboneMeta(backbone=self.name, generative=False, operation=operation, note=f"{FALLBACK} ({self.reason}): {detail}")

    def refine(
        self,
        image: Image,
        prompt: str = "",
        strength: float = 0.3,
        keep_mask: Mask | None = None,
        seed: int = 0,
        adapters: dict[str, float] | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """Blend the seam between kept and free pixels; the prompt and adapters need diffusion and are not used."""
        ignored = [what for what, given in (("prompt", prompt), ("adapters", adapters)) if given]
        suffix = f"; {' and '.join(ignored)} ignored" if ignored else ""
        if keep_mask is None:
            return self._meta("refine", f"no keep mask marks an edit boundary, picture unchanged{suffix}").stamp(image.pixels, image)
        if strength <= 0:
            return self._meta("refine", f"strength 0, picture unchanged{suffix}").stamp(image.pixels, image)
        keep = alpha_of(keep_mask, image.height, image.width)
        blended = seam_blend(image.pixels, keep, strength)
        detail = f"seams along the keep mask's edge blended at strength {strength:g}{suffix}"
        return self._meta("refine", detail).stamp(keep_exact(blended, image, keep_mask), image)

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0, progress: Progress | None = None) -> Image:
        """Reconstruct the masked region from its surroundings (it cannot draw what ``prompt`` asks for)."""
        alpha = alpha_of(mask, image.height, image.width)
        filled = fill_holes(image.pixels, alpha > 0)
        detail = "hole filled from its surroundings (classical inpainting)"
        if prompt:
            detail += f"; prompt {prompt!r} not drawn: that needs diffusion weights"
        return self._meta("inpaint", detail).stamp(blend(filled, image.pixels, alpha), image)

    def edit(
        self, image: Image, instruction: str, seed: int = 0, keep_mask: Mask | None = None, progress: Progress | None = None
    ) -> Image:
        raise BackboneError(
            f"edit({instruction!r}): an instruction-following edit needs diffusion weights, and the classical "
            f"fallback is running ({self.reason}); {HOW_TO_CONFIGURE}"
        )
