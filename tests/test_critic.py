"""The critic's checks on real photos: each passes on a correct result and fails on a broken one."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from banana.agent.critic import critique
from banana.agent.executor import Executor, RunResult
from banana.agent.intent import intent_checks
from banana.agent.program import validate
from banana.agent.samples import sample
from banana.tools.checks import CheckCall, CheckResult, render_phrase
from banana.tools.values import Image, Mask


def box_mask(img: Image, x0: float, y0: float, x1: float, y1: float) -> Mask:
    a = np.zeros((img.height, img.width), np.float32)
    a[int(y0 * img.height) : int(y1 * img.height), int(x0 * img.width) : int(x1 * img.width)] = 1.0
    return Mask(a)


def judge(registry, tool: str, src: Image, out: Image, mask: Mask | None = None, **args) -> dict[str, CheckResult]:
    """Run the checks the tool declares on its spec; results by check name."""
    spec = registry.get(tool)
    literals = spec.args_model.model_validate(args).model_dump()
    ports = {"image": src, **({"mask": mask} if mask is not None else {})}
    call = CheckCall(node="n", tool=tool, args=literals, ports=ports, output=out, source=src)
    return {r.check: r for check in spec.checks for r in check(call)}


def run_tool(registry, tool: str, src: Image, mask: Mask | None = None, **args) -> Image:
    return registry.get(tool)(image=src, **({"mask": mask} if mask is not None else {}), **args)


@pytest.fixture(scope="module")
def china() -> Image:
    return sample("china")


def test_keep_outside_the_mask(registry, china):
    mask = box_mask(china, 0.1, 0.1, 0.5, 0.5)
    good = run_tool(registry, "adjust", china, mask, brightness=0.4)
    assert judge(registry, "adjust", china, good, mask, brightness=0.4)["keep outside mask"].passed
    leaked = run_tool(registry, "adjust", china, box_mask(china, 0.1, 0.1, 0.8, 0.8), brightness=0.4)
    bad = judge(registry, "adjust", china, leaked, mask, brightness=0.4)["keep outside mask"]
    assert not bad.passed and bad.hard and "leaked out of its mask" in bad.advice


def test_blur_follows_its_amount_over_the_whole_mask(registry, china):
    mask = box_mask(china, 0.0, 0.0, 1.0, 0.6)
    good = run_tool(registry, "blur", china, mask, amount=0.5)
    checks = judge(registry, "blur", china, good, mask, amount=0.5)
    assert checks["blur lowers sharpness"].passed and checks["blur keeps the tones"].passed
    nothing = judge(registry, "blur", china, china, mask, amount=0.5)["blur lowers sharpness"]
    assert not nothing.passed and nothing.fix is not None and nothing.fix.args == {"amount": 0.8}
    corner = run_tool(registry, "blur", china, box_mask(china, 0.0, 0.0, 0.3, 0.3), amount=0.5)
    assert not judge(registry, "blur", china, corner, mask, amount=0.5)["blur lowers sharpness"].passed
    pasted = Image(np.where(mask.alpha[..., None] > 0.5, np.clip(good.pixels.astype(int) + 60, 0, 255), good.pixels).astype(np.uint8))
    assert not judge(registry, "blur", china, pasted, mask, amount=0.5)["blur keeps the tones"].passed


def test_adjust_moves_each_statistic_its_way(registry, photos):
    coffee = photos["coffee"]
    brighter = run_tool(registry, "adjust", coffee, brightness=0.4)
    assert judge(registry, "adjust", coffee, brighter, brightness=0.4)["adjust brightness"].passed
    darker = run_tool(registry, "adjust", coffee, brightness=-0.4)
    assert not judge(registry, "adjust", coffee, darker, brightness=0.4)["adjust brightness"].passed
    grey = run_tool(registry, "adjust", coffee, saturation=-1.0)
    checks = judge(registry, "adjust", coffee, grey, saturation=-1.0)
    assert checks["adjust saturation"].passed and checks["adjust keeps the lightness"].passed
    assert not judge(registry, "adjust", coffee, run_tool(registry, "adjust", coffee, saturation=-0.3), saturation=-1.0)[
        "adjust saturation"
    ].passed
    warm = run_tool(registry, "adjust", coffee, warmth=0.5)
    assert judge(registry, "adjust", coffee, warm, warmth=0.5)["adjust warmth"].passed
    assert not judge(registry, "adjust", coffee, run_tool(registry, "adjust", coffee, warmth=-0.5), warmth=0.5)["adjust warmth"].passed


def test_recolor_reaches_the_hue_and_keeps_the_shading(registry, photos):
    flower = photos["flower"]
    mask = box_mask(flower, 0.3, 0.3, 0.7, 0.7)
    purple = run_tool(registry, "recolor", flower, mask, color="purple")
    checks = judge(registry, "recolor", flower, purple, mask, color="purple")
    assert checks["recolor reaches the hue"].passed and checks["recolor keeps the shading"].passed
    green = run_tool(registry, "recolor", flower, mask, color="green")
    wrong = judge(registry, "recolor", flower, green, mask, color="purple")["recolor reaches the hue"]
    assert not wrong.passed and wrong.value > 90


def test_replace_background_keeps_the_foreground_and_reaches_the_colour(registry, astronaut):
    fg = box_mask(astronaut, 0.3, 0.2, 0.7, 1.0)
    white = run_tool(registry, "replace_background", astronaut, fg, color="white")
    checks = judge(registry, "replace_background", astronaut, white, fg, color="white")
    assert all(checks[k].passed for k in ("foreground kept", "background is the colour", "no halo"))
    black = run_tool(registry, "replace_background", astronaut, fg, color="black")
    assert not judge(registry, "replace_background", astronaut, black, fg, color="white")["background is the colour"].passed
    haloed = run_tool(registry, "replace_background", astronaut, box_mask(astronaut, 0.27, 0.17, 0.73, 1.0), color="white")
    assert not judge(registry, "replace_background", astronaut, haloed, fg, color="white")["no halo"].passed


def test_crop_aspect_and_faces(registry, astronaut, china):
    good = run_tool(registry, "crop", china, aspect="16:9")
    assert judge(registry, "crop", china, good, aspect="16:9")["crop aspect"].passed
    wrong = run_tool(registry, "crop", china, aspect="4:3")
    assert not judge(registry, "crop", china, wrong, aspect="16:9")["crop aspect"].passed
    cut = run_tool(registry, "crop", astronaut, box=[0, 300, 512, 512])  # below her face
    faces = judge(registry, "crop", astronaut, cut, box=[0, 300, 512, 512])["crop keeps faces"]
    assert not faces.passed and not faces.hard
    top = run_tool(registry, "crop", astronaut, box=[100, 0, 400, 300])
    assert judge(registry, "crop", astronaut, top, box=[100, 0, 400, 300])["crop keeps faces"].passed


def test_upscale_size_and_content(registry):
    small = Image(cv2.resize(sample("chelsea").pixels, (150, 100), interpolation=cv2.INTER_AREA))
    big = run_tool(registry, "upscale", small, factor=2)
    checks = judge(registry, "upscale", small, big, factor=2)
    assert checks["upscale size"].passed and checks["upscale matches the input"].passed
    flipped = Image(np.ascontiguousarray(big.pixels[::-1]))
    assert not judge(registry, "upscale", small, flipped, factor=2)["upscale matches the input"].passed
    assert not judge(registry, "upscale", small, big, factor=3)["upscale size"].passed


def test_stylize_changed_the_picture(registry, photos):
    cat = photos["chelsea"]
    mosaic = run_tool(registry, "stylize", cat, style="mosaic")
    assert judge(registry, "stylize", cat, mosaic, style="mosaic")["stylize changed the picture"].passed
    assert not judge(registry, "stylize", cat, cat, style="mosaic")["stylize changed the picture"].passed


def test_mask_sanity(registry, astronaut):
    spec = registry.get("segment")

    def sanity(alpha: np.ndarray, target: str) -> dict[str, CheckResult]:
        call = CheckCall(node="m", tool="segment", args={"target": target}, ports={"image": astronaut}, output=Mask(alpha))
        return {r.check: r for c in spec.checks for r in c(call)}

    h, w = astronaut.height, astronaut.width
    empty = sanity(np.zeros((h, w), np.float32), "sky")["mask not empty"]
    assert not empty.passed and "covers 0.0%" in empty.advice and "'background'" in empty.advice
    assert not sanity(np.ones((h, w), np.float32), "person")["mask not everything"].passed
    assert sanity(np.ones((h, w), np.float32), "background")["mask not everything"].passed is False  # 100 % is not a background either
    low = np.zeros((h, w), np.float32)
    low[int(0.7 * h) :] = 1
    assert not sanity(low, "sky")["sky at the top"].passed
    high = np.zeros((h, w), np.float32)
    high[: int(0.3 * h)] = 1
    assert sanity(high, "sky")["sky at the top"].passed


def test_quality_flags_a_flat_picture_and_a_seam(registry, china):
    flat = Image(np.full_like(china.pixels, 128))
    assert not judge(registry, "adjust", china, flat, contrast=-1.0)["not constant"].passed
    mask = box_mask(china, 0.3, 0.3, 0.7, 0.7)
    patched = china.pixels.copy()
    patched[mask.alpha > 0.5] = 255  # a hole "filled" with a flat white patch
    seam = judge(registry, "remove", china, Image(patched), mask)["seam energy"]
    assert not seam.passed and "seam" in seam.advice
    soft = run_tool(registry, "blur", china, mask, amount=0.5)
    assert judge(registry, "blur", china, soft, mask, amount=0.5)["seam energy"].passed


BG_BLUR = {"version": 1, "nodes": [
    {"id": "p", "tool": "segment", "args": {"image": "$input", "target": "person"}},
    {"id": "bg", "tool": "invert", "args": {"mask": "$p"}},
    {"id": "o", "tool": "blur", "args": {"image": "$input", "mask": "$bg", "amount": 0.5}}], "output": "$o"}  # fmt: skip


@pytest.fixture(scope="module")
def bg_blur(registry, astronaut):
    valid = validate(BG_BLUR, registry)
    with Executor(registry) as ex:
        return valid, ex.run(valid, {"input": astronaut})


def test_faces_keep_identity_unless_an_edit_repaints_them(registry, astronaut, bg_blur):
    valid, run = bg_blur
    good = critique(valid, run, {"input": astronaut}, registry)
    assert good.passed and good.results[-1].check == "faces keep identity" and good.results[-1].passed
    hopper = sample("grace_hopper")
    from banana.experts.faces import find_faces

    x0, y0, x1, y1 = (int(v) for v in find_faces(astronaut.pixels)[0].box)
    a0, b0, a1, b1 = (int(v) for v in find_faces(hopper.pixels)[0].box)
    swapped = run.outputs["o"].pixels.copy()
    swapped[y0:y1, x0:x1] = cv2.resize(hopper.pixels[b0:b1, a0:a1], (x1 - x0, y1 - y0))
    broken = RunResult(output_id="o", outputs={**run.outputs, "o": Image(swapped)})
    c = critique(valid, broken, {"input": astronaut}, registry)
    identity = next(r for r in c.results if r.check == "faces keep identity")
    assert not identity.passed and identity.value > 0.45 and not c.passed


def test_intent_checks_read_the_request(registry):
    darken_person = validate({"version": 1, "nodes": [
        {"id": "p", "tool": "segment", "args": {"image": "$input", "target": "person"}},
        {"id": "o", "tool": "adjust", "args": {"image": "$input", "mask": "$p", "brightness": -0.4}}],
        "output": "$o"}, registry)  # fmt: skip
    scope = intent_checks("darken everything except him", darken_person, registry)
    assert [r.check for r in scope if not r.passed] == ["edit is outside the subject"] and scope[0].fix.invert_mask
    assert all(r.passed for r in intent_checks("darken him", darken_person, registry))
    direction = [r for r in intent_checks("make him brighter", darken_person, registry) if not r.passed]
    assert direction[0].check == "brightness direction" and direction[0].fix.args == {"brightness": 0.4}
    blur = validate(
        {"version": 1, "nodes": [{"id": "o", "tool": "blur", "args": {"image": "$input", "amount": 0.5}}], "output": "$o"}, registry
    )
    assert any("use sharpen" in r.advice for r in intent_checks("remove the blur from this photo", blur, registry))
    dropped = [r for r in intent_checks("blur it and crop it to 16:9", blur, registry) if not r.passed]
    assert [r.check for r in dropped] == ["clause 'crop' planned"]


def test_phrases_describe_a_call():
    assert render_phrase("blur {mask}, amount {amount}", {"mask": "everything except the person", "amount": 0.5}) == (
        "blur everything except the person, amount 0.5"
    )
    assert render_phrase("crop the picture[ to {aspect}][ to the box {box}]", {"aspect": "16:9"}) == "crop the picture to 16:9"


def test_banana_critique_exit_codes(tmp_path, registry, astronaut, bg_blur):
    _, run = bg_blur
    program = tmp_path / "p.json"
    program.write_text(json.dumps(BG_BLUR))
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    run.outputs["o"].save(good)
    astronaut.save(bad)  # nothing blurred
    cmd = [sys.executable, "-m", "banana.agent.cli", "critique", str(program), "-i", "sample:astronaut"]
    ok = subprocess.run([*cmd, "--result", str(good), "--json"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["passed"] is True
    no = subprocess.run([*cmd, "--result", str(bad), "--json"], capture_output=True, text=True, timeout=300)
    assert no.returncode == 1
    report = json.loads(no.stdout)
    assert report["passed"] is False and any("blur lowers sharpness FAILED" in line for line in report["reasons"])


def test_catalogue_v2_checks(registry, photos):
    cat = photos["chelsea"]
    soft = run_tool(registry, "blur", cat, amount=0.1)
    sharpened = run_tool(registry, "sharpen", soft, amount=0.7)
    assert judge(registry, "sharpen", soft, sharpened, amount=0.7)["sharpen raises sharpness"].passed
    assert not judge(registry, "sharpen", soft, run_tool(registry, "blur", soft, amount=0.2), amount=0.7)["sharpen raises sharpness"].passed
    noisy = Image(np.clip(cat.pixels.astype(int) + np.random.default_rng(0).normal(0, 20, cat.pixels.shape), 0, 255).astype(np.uint8))
    clean = run_tool(registry, "denoise", noisy, amount=0.7)
    assert judge(registry, "denoise", noisy, clean, amount=0.7)["denoise lowers noise"].passed
    assert not judge(registry, "denoise", noisy, noisy, amount=0.7)["denoise lowers noise"].passed
    flipped = run_tool(registry, "flip", cat, direction="horizontal")
    assert judge(registry, "flip", cat, flipped, direction="horizontal")["flip geometry"].passed
    assert not judge(registry, "flip", cat, flipped, direction="vertical")["flip geometry"].passed
    turned = run_tool(registry, "rotate", cat, degrees=90)
    assert judge(registry, "rotate", cat, turned, degrees=90)["rotate geometry"].passed
    assert not judge(registry, "rotate", cat, turned, degrees=-90)["rotate geometry"].passed  # the other way round
    framed = run_tool(registry, "border", cat, pixels=12, color="black")
    checks = judge(registry, "border", cat, framed, pixels=12, color="black")
    assert checks["border colour"].passed and checks["picture kept inside the border"].passed
    assert not judge(registry, "border", cat, framed, pixels=12, color="white")["border colour"].passed
    mask = box_mask(cat, 0.3, 0.2, 0.7, 0.8)
    blocks = run_tool(registry, "pixelate", cat, mask, block=16)
    assert judge(registry, "pixelate", cat, blocks, mask, block=16)["pixelate removes detail"].passed
    assert not judge(registry, "pixelate", cat, cat, mask, block=16)["pixelate removes detail"].passed


def test_intent_reads_turns_and_captions(registry):
    rotate = validate(
        {"version": 1, "nodes": [{"id": "o", "tool": "rotate", "args": {"image": "$input", "degrees": 90}}], "output": "$o"}, registry
    )
    wrong = [r for r in intent_checks("rotate it clockwise", rotate, registry) if not r.passed]
    assert wrong[0].check == "rotate direction" and wrong[0].fix.args == {"degrees": -90}
    assert not [r for r in intent_checks("rotate it counter-clockwise", rotate, registry) if not r.passed]
    caption = [r for r in intent_checks('write "Happy birthday" at the top', rotate, registry) if not r.passed]
    assert caption[0].fix.replace == [{"tool": "add_text", "args": {"text": "Happy birthday", "position": "top"}}]
