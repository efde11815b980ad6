"""The critic's own accuracy, and the distributions its thresholds were calibrated on.

Correct results: each program below run on a real sample photo. Broken results: the same
program's output deliberately spoiled the ways real edits go wrong: wrong colour, shifted
mask, inverted mask, nothing done (e.g. an unblurred background), a changed face, a pasted
seam, the wrong aspect, the edit on the wrong region. The critic judges every one against the
program that should have made it (masks come from running that program).

Reports: correct results passing (goal >= 95 %), broken results caught by at least one hard
check (goal >= 95 %), per kind; and per check, its values on correct results next to its
threshold and on the broken results it caught — how the thresholds in
``banana.experts.checks`` / ``banana.agent.critic`` were chosen (between the two, with margin
on the correct side).

Run: ``python -m bench.critic [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from banana.agent.critic import Critique, critique
from banana.agent.executor import Executor, RunResult
from banana.agent.loop import fix_program
from banana.agent.program import Program, ValidProgram, parse_program, validate
from banana.agent.samples import sample
from banana.tools.checks import CheckResult, Fix
from banana.tools.registry import Registry, default_registry
from banana.tools.values import Image, Mask


def seg(target: str, nid: str = "m") -> dict[str, Any]:
    return {"id": nid, "tool": "segment", "args": {"image": "$input", "target": target}}


def prog(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "nodes": list(nodes), "output": f"${nodes[-1]['id']}"}


INV = {"id": "bg", "tool": "invert", "args": {"mask": "$m"}}


def edit(tool: str, mask: str | None = "$m", **args: Any) -> dict[str, Any]:
    a: dict[str, Any] = {"image": "$input", **args}
    if mask:
        a["mask"] = mask
    return {"id": "out", "tool": tool, "args": a}


# (photo, request, program, other colour / aspect for the "wrong" variants)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("astronaut", "blur the background behind her", prog(seg("person"), INV, edit("blur", "$bg", amount=0.5))),
    ("grace_hopper", "blur the background behind him a little", prog(seg("person"), INV, edit("blur", "$bg", amount=0.3))),
    ("coffee", "blur the background", prog(seg("background"), edit("blur", amount=0.6))),
    ("chelsea", "blur the background behind the cat", prog(seg("background"), edit("blur", amount=0.5))),
    ("astronaut", "make everything except her black and white", prog(seg("person"), INV, edit("adjust", "$bg", saturation=-1.0))),
    ("grace_hopper", "darken the background", prog(seg("background"), edit("adjust", brightness=-0.5))),
    ("china", "brighten it", prog(edit("adjust", None, brightness=0.4))),
    ("flower", "make the colours more vivid", prog(edit("adjust", None, saturation=0.5))),
    ("coffee", "make it warmer", prog(edit("adjust", None, warmth=0.5))),
    ("astronaut", "dye her hair purple", prog(seg("hair"), edit("recolor", color="purple"))),
    ("flower", "make the red flowers blue", prog(seg("red"), edit("recolor", color="blue"))),
    ("astronaut", "put her on a white background", prog(seg("person"), edit("replace_background", color="white"))),
    ("grace_hopper", "plain grey background behind him", prog(seg("person"), edit("replace_background", color="grey"))),
    ("china", "crop it to 16:9", prog(edit("crop", None, aspect="16:9"))),
    ("coffee", "square crop", prog(edit("crop", None, aspect="1:1"))),
    ("chelsea", "upscale it 2x", prog(edit("upscale", None, factor=2))),
    ("chelsea", "make it a mosaic", prog(edit("stylize", None, style="mosaic"))),
    ("grace_hopper", "turn him into a pencil sketch", prog(edit("stylize", None, style="pencil"))),
    ("china", "make it black and white", prog(edit("adjust", None, saturation=-1.0))),
    ("rocket", "darken the sky a bit", prog(seg("sky"), edit("adjust", brightness=-0.3))),
    ("motorcycle", "blur it slightly", prog(edit("blur", None, amount=0.1))),
    ("astronaut", "make her warmer", prog(seg("person"), edit("adjust", warmth=0.4))),
    ("flower", "crop to 4:5", prog(edit("crop", None, aspect="4:5"))),
    ("coffee", "more contrast", prog(edit("adjust", None, contrast=0.4))),
    ("grace_hopper", "make it black and white", prog(edit("adjust", None, saturation=-1.0))),
    ("astronaut", "brighten the photo a lot", prog(edit("adjust", None, brightness=0.6))),
    ("grace_hopper", "make the background a watercolor", prog(seg("person"), INV, edit("stylize", "$bg", style="watercolor"))),
]
WRONG_COLOUR = {"purple": "green", "blue": "yellow", "white": "black", "grey": "red"}


def run(ex: Executor, program: Program | dict[str, Any], photo: Image, registry: Registry) -> tuple[ValidProgram, RunResult]:
    valid = validate(program, registry)
    return valid, ex.run(valid, {"input": photo})


def with_output(r: RunResult, valid: ValidProgram, image: Image) -> RunResult:
    """The run's intermediate values, with a different final picture."""
    outputs = dict(r.outputs)
    outputs[valid.output] = image
    return RunResult(output_id=r.output_id, outputs=outputs)


def face_from(other: str) -> Callable[[Image, Image], Image | None]:
    """Paste another photo's face over the first face found (a changed identity)."""

    def spoil(result: Image, photo: Image) -> Image | None:
        from banana.experts.faces import find_faces

        faces, donor = find_faces(photo.pixels), sample(other)
        theirs = find_faces(donor.pixels)
        if not faces or not theirs or (result.height, result.width) != (photo.height, photo.width):
            return None
        x0, y0, x1, y1 = (int(v) for v in faces[0].box)
        a0, b0, a1, b1 = (int(v) for v in theirs[0].box)
        px = result.pixels.copy()
        px[y0:y1, x0:x1] = cv2.resize(donor.pixels[b0:b1, a0:a1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return Image(px)

    return spoil


def seam(result: Image, photo: Image, alpha: np.ndarray | None) -> Image | None:
    """The edited region pasted back with a visible step (brighter by 0.25) along the mask edge."""
    if alpha is None or (result.height, result.width) != alpha.shape:
        return None
    px = result.pixels.astype(np.float32)
    inside = (alpha > 0.5)[..., None]
    px = np.where(inside, np.clip(px + 64, 0, 255), px)
    return Image(px.astype(np.uint8))


def mask_of(valid: ValidProgram, r: RunResult) -> np.ndarray | None:
    node = valid.program.node(valid.output)
    ref = node.args.get("mask")
    m = r.outputs.get(ref[1:]) if isinstance(ref, str) and ref.startswith("$") else None
    return m.alpha if isinstance(m, Mask) else None


def shifted(program: Program, valid: ValidProgram, r: RunResult, photo: Image, registry: Registry, frac: float) -> Image | None:
    """The final tool run again with its mask moved sideways."""
    alpha = mask_of(valid, r)
    if alpha is None:
        return None
    dx = round(frac * alpha.shape[1])
    moved = np.zeros_like(alpha)
    moved[:, dx:] = alpha[:, :-dx]
    node = valid.program.node(valid.output)
    spec = registry.get(node.tool)
    literals = {k: v for k, v in node.args.items() if k in spec.arg_names}
    return spec(image=photo, mask=Mask(moved), **literals)  # type: ignore[return-value]


def variants(ex: Executor, program: Program, valid: ValidProgram, r: RunResult, photo: Image, registry: Registry) -> dict[str, Image]:
    """Deliberately broken results for one correct case (only the kinds that apply to it)."""
    node = valid.program.node(valid.output)
    good = r.outputs[valid.output]
    assert isinstance(good, Image)
    out: dict[str, Image | None] = {}
    masked = isinstance(node.args.get("mask"), str)
    if node.tool in ("blur", "stylize", "recolor", "adjust", "replace_background", "upscale"):
        out["nothing done"] = (
            photo
            if node.tool != "upscale"
            else Image(cv2.resize(photo.pixels, (good.width, good.height), interpolation=cv2.INTER_NEAREST)[::-1].copy())
        )
    if masked:
        inv = fix_program(
            program, CheckResult(check="x", kind="intent", node=node.id, value=1, threshold=0, passed=False, fix=Fix(invert_mask=True))
        )
        assert inv is not None
        out["inverted mask"] = run(ex, inv, photo, registry)[1].outputs[valid.output]  # type: ignore[assignment]
        out["shifted mask"] = shifted(program, valid, r, photo, registry, 0.2)
        out["pasted seam"] = seam(good, photo, mask_of(valid, r))
    if "color" in node.args:
        wrong = program.model_copy(deep=True)
        wrong.node(node.id).args["color"] = WRONG_COLOUR.get(str(node.args["color"]), "green")
        out["wrong colour"] = run(ex, wrong, photo, registry)[1].outputs[valid.output]  # type: ignore[assignment]
    if node.tool == "adjust":
        wrong = program.model_copy(deep=True)
        args = wrong.node(node.id).args
        for k in ("brightness", "saturation", "warmth", "contrast"):
            if args.get(k):
                args[k] = -0.5 * float(args[k]) if k != "saturation" or args[k] > -1 else 0.3
        out["wrong direction"] = run(ex, wrong, photo, registry)[1].outputs[valid.output]  # type: ignore[assignment]
    if node.tool == "crop":
        wrong = program.model_copy(deep=True)
        wrong.node(node.id).args["aspect"] = "4:3" if node.args.get("aspect") != "4:3" else "1:1"
        out["wrong aspect"] = run(ex, wrong, photo, registry)[1].outputs[valid.output]  # type: ignore[assignment]
    if node.tool in ("blur", "adjust", "recolor", "replace_background") and masked:
        # the edit on a fixed wrong region: the top-left quarter
        corner = np.zeros((photo.height, photo.width), np.float32)
        corner[: photo.height // 2, : photo.width // 2] = 1.0
        spec = registry.get(node.tool)
        literals = {k: v for k, v in node.args.items() if k in spec.arg_names}
        out["wrong region"] = spec(image=photo, mask=Mask(corner), **literals)  # type: ignore[assignment]
    if photo.meta.get("source") in ("sample:astronaut", "sample:grace_hopper") and (good.height, good.width) == (photo.height, photo.width):
        out["changed face"] = face_from("grace_hopper" if "astronaut" in photo.meta["source"] else "astronaut")(good, photo)
    return {k: v for k, v in out.items() if v is not None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="", help="write every judgement here")
    args = ap.parse_args()
    registry = default_registry()
    good_results: list[tuple[str, Critique]] = []
    broken_results: list[tuple[str, str, Critique]] = []
    with Executor(registry) as ex:
        for photo_name, request, data in CASES:
            photo = sample(photo_name)
            program = parse_program(data)
            valid, r = run(ex, program, photo, registry)
            if not r.ok:
                print(f"SKIP {photo_name} {request!r}: {r.failures}")
                continue
            name = f"{photo_name}: {request}"
            c = critique(valid, r, {"input": photo}, registry, request=request)
            good_results.append((name, c))
            print(f"{'ok  ' if c.passed else 'FAIL'} correct  {name}" + ("" if c.passed else f"  <- {c.summary()}"))
            for kind, broken in variants(ex, program, valid, r, photo, registry).items():
                cb = critique(valid, with_output(r, valid, broken), {"input": photo}, registry, request=request)
                broken_results.append((name, kind, cb))
                caught = [f.check for f in cb.hard_failures]
                print(f"{'ok  ' if caught else 'MISS'} {kind:15s} {name}  <- {', '.join(caught) or 'nothing caught'}")
    n_good = sum(c.passed for _, c in good_results)
    n_caught = sum(not c.passed for _, _, c in broken_results)
    print(f"\ncorrect results passing: {n_good}/{len(good_results)} = {n_good / max(1, len(good_results)):.0%}")
    print(f"broken results caught:   {n_caught}/{len(broken_results)} = {n_caught / max(1, len(broken_results)):.0%}")
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for _, kind, c in broken_results:
        by_kind[kind].append(not c.passed)
    print("\n| broken kind | caught |\n|---|---|")
    for kind, hits in sorted(by_kind.items()):
        print(f"| {kind} | {sum(hits)}/{len(hits)} |")
    print("\n| check | threshold | on correct results (min / median / max) | on broken results it failed (min / median / max) |")
    print("|---|---|---|---|")
    good_vals: dict[str, list[float]] = defaultdict(list)
    bad_vals: dict[str, list[float]] = defaultdict(list)
    thresholds: dict[str, float] = {}
    for _, c in good_results:
        for res in c.results:
            good_vals[res.check].append(res.value)
            thresholds[res.check] = res.threshold
    for _, _, c in broken_results:
        for res in c.hard_failures:
            bad_vals[res.check].append(res.value)
            thresholds.setdefault(res.check, res.threshold)

    def stats(v: list[float]) -> str:
        return f"{min(v):.3g} / {float(np.median(v)):.3g} / {max(v):.3g} (n={len(v)})" if v else "-"

    for check in sorted(thresholds):
        print(f"| {check} | {thresholds[check]:.3g} | {stats(good_vals[check])} | {stats(bad_vals[check])} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "correct": [{"case": n, "passed": c.passed, "checks": [r.model_dump() for r in c.results]} for n, c in good_results],
                    "broken": [
                        {"case": n, "kind": k, "caught": not c.passed, "failed": [r.model_dump() for r in c.hard_failures]}
                        for n, k, c in broken_results
                    ],
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
