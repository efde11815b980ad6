"""Object edits: remove (fill the hole), recolor (new hue, same texture), replace (generative, or a labelled fallback).

``remove`` is the first routed tool: a thin hole is filled by fast diffusion
inpainting (Telea), a thick one by PatchMatch, which copies real texture from
around the hole. The manager's router picks by the hole's thickness and
records the decision in the result's ``meta["route"]``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from banana.experts.checks import declared
from banana.experts.colors import lab_to_linear, linear_to_srgb, parse_color, rgb_to_lab
from banana.experts.imaging import composite, fit_mask, float_of, kept_part, to_image
from banana.experts.manager import choose, context, implements, model
from banana.tools.backbone import Backbone, fingerprint, get_backbone
from banana.tools.memo import derived
from banana.tools.spec import Resources, tool
from banana.tools.values import Image, Mask

# Telea diffuses colour inwards: fine across a few pixels, a smear across more.
THIN_FRACTION = 0.016  # of the diagonal: largest half-width (distance to the hole's edge) Telea fills
TELEA_RADIUS = 5
PATCH_SIZE = 5  # PatchMatch's default of 15 is ~6x slower for little gain at these sizes
MAX_HOLE_AREA = 0.9


@dataclass(frozen=True)
class Hole:
    """The pixels to fill (uint8, 255 = hole), grown past the object's edge, and the box to work in."""

    pixels: np.ndarray
    grown_px: int
    half_width: float  # largest distance from a hole pixel to its edge
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the work area (hole + context)
    diagonal: float

    @property
    def area_px(self) -> int:
        return int(np.count_nonzero(self.pixels))

    @property
    def box_px(self) -> int:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def thin(self) -> bool:
        return self.half_width <= THIN_FRACTION * self.diagonal

    def as_meta(self) -> dict[str, Any]:
        return {"area_px": self.area_px, "half_width_px": round(self.half_width, 1), "grown_px": self.grown_px, "box": list(self.box)}


def grow_px_for(height: int, width: int) -> int:
    """How far past the mask to fill, so no sliver of the object's edge survives."""
    return max(3, round(0.006 * float(np.hypot(height, width))))


def hole_for(mask: Mask, image: Image, tool_name: str) -> Hole:
    """The grown hole for a mask (soft edges count as object), with a clear error when there is nothing sensible to fill."""
    alpha = fit_mask(mask, image)
    core = (alpha > 0.1).astype(np.uint8) * 255
    if not core.any():
        raise ValueError(f"{tool_name} got an empty mask: nothing is selected (check the mask or segment target)")
    grown = grow_px_for(image.height, image.width)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grown + 1, 2 * grown + 1))
    hole = cv2.dilate(core, kernel)
    area = float(np.count_nonzero(hole)) / hole.size
    if area > MAX_HOLE_AREA:
        raise ValueError(f"{tool_name}: the mask covers {area:.0%} of the picture; too little is left to fill the hole from")
    half_width = float(cv2.distanceTransform(hole, cv2.DIST_L2, 5).max())
    margin = int(np.clip(half_width, 24, 96)) + TELEA_RADIUS  # PatchMatch copies from here: enough texture, bounded cost
    x, y, w, h = cv2.boundingRect(hole)
    box = (max(x - margin, 0), max(y - margin, 0), min(x + w + margin, image.width), min(y + h + margin, image.height))
    return Hole(hole, grown, half_width, box, float(np.hypot(image.height, image.width)))


# ---------------------------------------------------------------- filling (routed)


@model("pypatchmatch", memory_mb=50)
def get_patchmatch(device: str) -> Any:
    """PyPatchMatch's prebuilt native library (CPU only)."""
    from patchmatch import patch_match

    if not patch_match.patchmatch_available:
        raise RuntimeError("PyPatchMatch is installed but its native library did not load")
    return patch_match


_patchmatch_lock = threading.Lock()  # its random seed is global: one fill at a time keeps results reproducible


def _in_box(fill: Any, image: Image, hole: Hole) -> np.ndarray:
    """Run ``fill(crop, hole_crop)`` on the work box only, and paste the hole's pixels back."""
    x0, y0, x1, y1 = hole.box
    crop = np.ascontiguousarray(image.pixels[y0:y1, x0:x1])
    where = np.ascontiguousarray(hole.pixels[y0:y1, x0:x1])
    out = image.pixels.copy()
    filled = fill(crop, where)
    region = out[y0:y1, x0:x1]
    region[where > 0] = filled[where > 0]
    return out


@context("remove")
def remove_context(hole: Hole, image: Image | None = None, **_: Any) -> tuple[dict[str, float], str]:
    """The hole's thickness is what tells the fills apart (Telea smears across wide holes; PatchMatch copies texture)."""
    features = {"half_width_px": round(hole.half_width, 1), "area_px": float(hole.area_px), "box_px": float(hole.box_px),
                "thin": float(hole.thin), "diagonal": round(hole.diagonal, 1)}
    if image is not None:
        x0, y0, x1, y1 = hole.box
        grey = cv2.cvtColor(np.ascontiguousarray(image.pixels[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        features["texture"] = round(float(cv2.Laplacian(grey, cv2.CV_32F).std()), 2)
    w = hole.half_width
    bucket = "hole half-width <= 6 px" if w <= 6 else ("hole half-width 6-16 px" if w <= 16 else "hole half-width > 16 px")
    return features, bucket


# Telea smears across a thick hole and the critic cannot see a smear: it never applies there, whatever a router learns.
@implements("remove", "telea", applies=lambda hole, **_: hole.thin, cost=lambda hole, **_: 1.0 + 0.0005 * hole.box_px)
def fill_telea(image: Image, hole: Hole) -> np.ndarray:
    def fill(crop: np.ndarray, where: np.ndarray) -> np.ndarray:
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(cv2.inpaint(bgr, where, TELEA_RADIUS, cv2.INPAINT_TELEA), cv2.COLOR_BGR2RGB)

    return _in_box(fill, image, hole)


@implements("remove", "patchmatch", cost=lambda hole, **_: 5.0 + 0.006 * hole.box_px)
def fill_patchmatch(image: Image, hole: Hole) -> np.ndarray:
    pm = get_patchmatch()

    def fill(crop: np.ndarray, where: np.ndarray) -> np.ndarray:
        with _patchmatch_lock:
            pm.set_random_seed(0)
            return pm.inpaint(crop, where, patch_size=PATCH_SIZE)

    return _in_box(fill, image, hole)


@implements("remove", "fsr", cost=lambda hole, **_: 8.0 + 0.02 * hole.box_px)
def fill_fsr(image: Image, hole: Hole) -> np.ndarray:
    """Frequency-selective reconstruction (OpenCV xphoto): smooth structure across mid-size holes, slow on big boxes."""

    def fill(crop: np.ndarray, where: np.ndarray) -> np.ndarray:
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        out = np.zeros_like(bgr)
        cv2.xphoto.inpaint(bgr, np.where(where > 0, 0, 255).astype(np.uint8), out, cv2.xphoto.INPAINT_FSR_FAST)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)

    return _in_box(fill, image, hole)


def fill_hole(image: Image, hole: Hole) -> tuple[np.ndarray, dict[str, Any]]:
    """Fill the hole with the expert the router picks (the cheapest that suits it by default); pixels and the routing record."""
    impl, decision = choose("remove", hole=hole, image=image)
    return impl.run(image, hole), decision.as_meta()


@tool(role="object", resources=Resources(memory_mb=50), **declared("remove"), notes=(
    'removes objects only: degradations (blur, noise, haze, grain) are restored with sharpen, denoise, dehaze, never removed',
    'rain, glare, reflections and shadows are edit ("remove the rain"); writing and watermarks are segment "text" then remove',
))
def remove(image: Image, mask: Mask) -> Image:
    """Remove what the mask selects and fill the hole from its surroundings."""
    hole = hole_for(mask, image, "remove")
    pixels, route = fill_hole(image, hole)
    return Image(pixels, meta={"route": route, "hole": hole.as_meta()})


# ---------------------------------------------------------------- recolor


def tint(rgb: np.ndarray, target: np.ndarray, lab: np.ndarray | None = None) -> np.ndarray:
    """Pixels (N x 3) with their own lightness and the target's hue and chroma (the 'Color' blend mode, in Lab).

    Where that colour does not exist at a pixel's lightness (deep shadows, highlights),
    chroma is reduced until it does, so lightness and hue stay exact instead of clipping.
    ``lab``: the pixels' Lab when the caller has it already (it is not changed).
    """
    lab = rgb_to_lab(rgb) if lab is None else lab.copy()
    t = rgb_to_lab(target.reshape(1, 3))[0]
    chroma = float(np.hypot(t[1], t[2]))
    direction = t[1:] / chroma if chroma > 1e-6 else np.zeros(2, np.float32)
    lab[:, 1:] = chroma * direction
    lin = lab_to_linear(lab)
    todo = np.flatnonzero(((lin < -1e-4) | (lin > 1 + 1e-4)).any(axis=1))
    scale = chroma
    for _ in range(20):
        if todo.size == 0:
            break
        scale *= 0.85
        lab[todo, 1:] = scale * direction
        lin[todo] = lab_to_linear(lab[todo])
        todo = todo[((lin[todo] < -1e-4) | (lin[todo] > 1 + 1e-4)).any(axis=1)]
    return linear_to_srgb(lin)


@tool(role="object", **declared("recolor"), notes=(
    'from/to phrasing ("the car from blue to green") recolours to the TO colour; the target is the noun without the from-colour',
    'the same object in a new colour is recolor; a different object in its place is replace; a new material or state is edit',
))
def recolor(image: Image, mask: Mask, *, color: Annotated[str, Field(min_length=1, max_length=40)]) -> Image:
    """Give the masked region a new colour (a name like purple, or #RRGGBB), keeping its shading and texture."""
    target = parse_color(color)
    rgb = float_of(image)
    alpha = fit_mask(mask, image)
    edited = rgb.copy()
    inside = alpha > 0
    region = rgb[inside]
    lab = derived("recolor lab", (image, mask), lambda: rgb_to_lab(region))  # the same every turn that only changes the colour
    edited[inside] = tint(region, target, lab)
    return to_image(composite(edited, rgb, alpha, kept_part(image, mask, rgb, alpha)), meta={"color": color})


# ---------------------------------------------------------------- replace (generative)


def generative_backbone() -> tuple[Backbone | None, str]:
    """The configured backbone when it can invent content from a prompt, else None and why not.

    A misconfigured backbone (bad weights path, bad setting) raises: a user who set weights
    should hear about the mistake, not get a quiet fallback.
    """
    backbone = get_backbone()
    if not backbone.generative:
        return None, f"the {backbone.name!r} backbone has no diffusion weights configured"
    return backbone, ""


@tool(role="object", resources=Resources(device="gpu", memory_mb=50), salt=fingerprint, **declared("replace"))
def replace(image: Image, mask: Mask, *, prompt: Annotated[str, Field(min_length=1, max_length=200)]) -> Image:
    """Replace what the mask selects with something described by the prompt (needs a generative backbone)."""
    hole = hole_for(mask, image, "replace")
    backbone, why_not = generative_backbone()
    if backbone is not None:
        painted = backbone.inpaint(image, Mask(hole.pixels), prompt=prompt)
        pixels = np.where(hole.pixels[..., None] > 0, painted.pixels, image.pixels)
        return Image(pixels, meta={"backbone": backbone.name, **painted.meta, "prompt": prompt})
    pixels, route = fill_hole(image, hole)
    note = f"{why_not}: the region was filled from its surroundings, not replaced with {prompt!r}"
    return Image(pixels, meta={"fallback": True, "note": note, "route": route, "prompt": prompt})
