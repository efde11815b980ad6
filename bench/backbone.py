"""Backbone latency on this machine: the classical fallback on real photos, and the diffusers plumbing around a pipeline.

Run: ``.venv/bin/python -m bench.backbone``. Medians of a few runs, one thread. The tiny
diffusers pipeline computes nothing worth seeing: its line measures what Banana adds
around a pipeline call (resizing, composites, adapters), not a real model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from banana.agent.samples import sample
from banana.backbone import tiny
from banana.backbone.classical import ClassicalBackbone
from banana.backbone.diffusion import DiffusersBackbone
from banana.tools.backbone import BackboneConfig
from banana.tools.values import Image, Mask


def median_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()  # warm caches and lazy imports
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def pasted(base: Image, donor: Image, scale: int = 1) -> tuple[Image, Mask]:
    """``donor``'s corner pasted into ``base`` (a hard seam); keep = everything else. ``scale`` enlarges both first."""
    px = cv2.resize(base.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else base.pixels.copy()
    y0, y1, x0, x1 = (s * scale for s in (300, 420, 180, 330))
    donor_px = cv2.resize(donor.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else donor.pixels
    px[y0:y1, x0:x1] = donor_px[: y1 - y0, : x1 - x0]
    keep = np.ones(px.shape[:2], np.float32)
    keep[y0:y1, x0:x1] = 0.0
    return Image(px), Mask(keep)


def main() -> None:
    torch.set_num_threads(1)
    classical = ClassicalBackbone()
    astronaut, coffee = sample("astronaut"), sample("coffee")
    rows: list[tuple[str, float]] = []
    for scale in (1, 4):
        image, keep = pasted(astronaut, coffee, scale)
        for strength in (0.3, 1.0):
            def run(image: Image = image, keep: Mask = keep, strength: float = strength) -> Image:
                return classical.refine(image, strength=strength, keep_mask=keep)

            rows.append((f"classical refine, pasted patch, {image.width} px, strength {strength}", median_ms(run, 3 if scale > 1 else 5)))
    hole = np.zeros((512, 512), np.float32)
    hole[200:260, 300:380] = 1.0
    rows.append(("classical inpaint, 80x60 hole, 512 px", median_ms(lambda: classical.inpaint(astronaut, Mask(hole)))))
    line = np.zeros((512, 512), np.uint8)
    cv2.line(line, (20, 30), (450, 400), 1, 3)
    rows.append(("classical inpaint, 3 px scratch, 512 px", median_ms(lambda: classical.inpaint(astronaut, Mask(line.astype(np.float32))))))
    with tempfile.TemporaryDirectory() as tmp:
        weights = tiny.save("sd-inpaint", f"{tmp}/sd")
        diffusers = DiffusersBackbone(BackboneConfig(kind="diffusers", weights=weights, steps=2, resolution=64))
        image, keep = pasted(astronaut, coffee)
        rows.append(("tiny sd-inpaint refine (64 px, 2 steps) on a 512 px photo: Banana's overhead + a token pipeline",
                     median_ms(lambda: diffusers.refine(image, "a photo", strength=1.0, keep_mask=keep))))
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{width}} | median |\n|{'-' * (width + 2)}|--------|")
    for name, ms in rows:
        print(f"| {name:<{width}} | {ms:.0f} ms |")


if __name__ == "__main__":
    main()
