"""Per-tool latency at 512 px on a real photo (scikit-image's astronaut), through the registry.

The first call in the process includes loading the expert's model (lazy, once per
process) unless an earlier row or the set-up (segment person, detect_faces,
lock_identity) already loaded it; the median is the steady state. Run: ``make bench-experts``;
``python -m bench.experts sharpen rotate`` runs only the rows of the tools named.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from banana.agent.samples import sample
from banana.tools.registry import default_registry
from banana.tools.spec import ToolContext
from banana.tools.values import Image


def attempt(call: Callable[..., object], name: str, kwargs: dict[str, object], refused: bool) -> None:
    """One call; a row labelled '(refused)' must raise ValueError (and is timed all the same)."""
    try:
        call(name, **kwargs)
    except ValueError:
        if not refused:
            raise
    else:
        if refused:
            raise AssertionError(f"{name} {kwargs}: expected a refusal")


def main(repeats: int = 3, only: set[str] | None = None) -> None:
    registry = default_registry()
    photo = sample("astronaut")
    small = Image(cv2.resize(photo.pixels, (256, 256), interpolation=cv2.INTER_AREA))

    def call(name: str, **kwargs: object) -> object:
        return registry.get(name)(ToolContext(), **kwargs)

    person = call("segment", image=photo, target="person")
    background = call("invert", mask=person)
    faces = call("detect_faces", image=photo)
    identity = call("lock_identity", image=photo)
    face_hole = call("mask_from_boxes", boxes=faces, image=photo)
    captioned = call("add_text", image=photo, text="Houston, we have a caption", position="bottom")
    caption = call("segment", image=captioned, target="caption")
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("segment", "person", {"image": photo, "target": "person"}),
        ("segment", "sky (colour + position model)", {"image": sample("china"), "target": "sky"}),
        ("segment", "face", {"image": photo, "target": "face"}),
        ("detect_faces", "", {"image": photo}),
        ("detect", "person", {"image": photo, "target": "person"}),
        ("mask_from_boxes", "", {"boxes": faces, "image": photo}),
        ("invert", "", {"mask": person}),
        ("combine", "", {"a": person, "b": background, "op": "union"}),
        ("grow", "16 px", {"mask": person, "pixels": 16}),
        ("blur", "background", {"image": photo, "mask": background, "amount": 0.6}),
        ("adjust", "4 amounts", {"image": photo, "brightness": 0.2, "contrast": 0.2, "saturation": 0.3, "warmth": 0.2}),
        ("crop", "aspect 16:9", {"image": photo, "aspect": "16:9"}),
        ("recolor", "person -> purple", {"image": photo, "mask": person, "color": "purple"}),
        ("remove", "face hole", {"image": photo, "mask": face_hole}),
        ("replace", "fallback (no weights)", {"image": photo, "mask": face_hole, "prompt": "a cat"}),
        ("replace_background", "colour", {"image": photo, "mask": person, "color": "white"}),
        ("stylize", "neural style", {"image": photo, "style": "mosaic"}),
        ("stylize", "opencv pencil", {"image": photo, "style": "pencil sketch"}),
        ("upscale", "256 -> 512 (x2)", {"image": small, "factor": 2}),
        ("lock_identity", "", {"image": photo}),
        ("restore_identity", "", {"image": photo, "identity": identity}),
        ("refine", "classical fallback, keep = person", {"image": photo, "keep": person, "strength": 0.3}),
        ("sharpen", "whole picture", {"image": photo, "amount": 0.5}),
        ("denoise", "non-local means", {"image": photo, "amount": 0.5}),
        ("dehaze", "dark channel + guided filter", {"image": photo, "amount": 0.5}),
        ("enhance", "white balance + gamma + CLAHE", {"image": photo, "amount": 0.5}),
        ("retouch", "skin from segment (no mask)", {"image": photo, "amount": 0.5}),
        ("retouch", "face mask given", {"image": photo, "mask": face_hole, "amount": 0.5}),
        ("pixelate", "faces, 16 px blocks", {"image": photo, "mask": face_hole, "block": 16}),
        ("rotate", "90 degrees (exact)", {"image": photo, "degrees": 90}),
        ("rotate", "12.5 degrees, expand", {"image": photo, "degrees": 12.5}),
        ("flip", "horizontal", {"image": photo, "direction": "horizontal"}),
        ("straighten", "Hough lines", {"image": photo}),
        ("border", "20 px white", {"image": photo, "pixels": 20, "color": "white"}),
        ("add_text", "caption at the bottom", {"image": photo, "text": "Houston, we have a caption", "position": "bottom"}),
        ("adjust", "hue + shadows + highlights", {"image": photo, "hue": 0.2, "shadows": 0.3, "highlights": -0.3}),
        ("region", "position bottom-right", {"image": photo, "position": "bottom-right"}),
        ("region", "relation right-of the face box", {"image": photo, "boxes": faces, "relation": "right-of"}),
        ("segment", "text (PP-OCR det + rec), caption", {"image": captioned, "target": "caption"}),
        ("segment", "text, none in the picture (refused)", {"image": photo, "target": "text"}),
        ("remove", "the caption's text mask", {"image": captioned, "mask": caption}),
        ("segment", "eyes (face mesh)", {"image": photo, "target": "eyes"}),
        ("segment", "teeth (face mesh + colour)", {"image": photo, "target": "teeth"}),
        ("segment", "the person on the left (pick)", {"image": photo, "target": "the person on the left"}),
    ]
    cases = [c for c in cases if only is None or c[0] in only]
    print("| tool | case | first call in the process | median of next runs |")
    print("|---|---|---|---|")
    for name, label, kwargs in cases:
        refused = "(refused)" in label  # a refusal's cost is what a failing node costs
        t = time.perf_counter()
        attempt(call, name, kwargs, refused)
        first = time.perf_counter() - t
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            attempt(call, name, kwargs, refused)
            times.append(time.perf_counter() - t)
        print(f"| `{name}` | {label} | {first * 1000:.0f} ms | {statistics.median(times) * 1000:.0f} ms |", flush=True)


if __name__ == "__main__":
    main(only=set(sys.argv[1:]) or None)
