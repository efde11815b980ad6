"""A follow-up reuses what it derived from unchanged pictures (float pixels, Lab, unchanged nodes' checks), and gets
exactly what a from-scratch run of the same program gets; a changed input picture reuses nothing stale."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from banana.agent.critic import critique
from banana.agent.executor import ResultCache
from banana.agent.program import validate
from banana.agent.samples import sample
from banana.agent.sessions import Store
from banana.agent.surface import parse_steps
from banana.agent.turns import Agent, execute_program, run_turn
from banana.experts import checks
from banana.experts.background import masked_blur
from banana.experts.colors import parse_color, rgb_to_lab
from banana.experts.imaging import composite, diagonal, fit_mask, float_of
from banana.experts.objects import tint
from banana.experts.tone import apply_tone
from banana.tools.checks import CheckCall
from banana.tools.memo import Memo, derived, using
from banana.tools.registry import default_registry
from banana.tools.values import Image, Mask

REG = default_registry()


def scratch(picture: Image, program: object) -> object:
    with Agent(REG, cache=ResultCache()) as agent:
        return execute_program(agent, picture, program)


@pytest.mark.parametrize(("name", "turn1", "text", "changed"), [
    ("astronaut", 'segment target="person"\ninvert\nblur amount=0.5', "stronger", "blur"),
    ("astronaut", 'segment target="person"\ninvert\nadjust saturation=-0.6', "a bit less", "adjust"),
    ("coffee", 'segment target="red"\nrecolor color="blue"', "make it purple instead", "recolor"),
])
def test_follow_up_equals_scratch_and_reuses(name: str, turn1: str, text: str, changed: str) -> None:
    picture = sample(name)
    with Agent(REG, cache=ResultCache()) as agent:
        execute_program(agent, picture, parse_steps(turn1, REG))
        memo = agent.executor.cache.memo
        hits = memo.hits
        out = run_turn(agent, picture, parse_steps(turn1, REG), text)
        assert out.run is not None and out.run.executed == [changed]
        assert memo.hits > hits  # the input's float pixels / Lab and the unchanged nodes' checks came from turn 1
    again = scratch(picture, out.program)
    assert np.array_equal(out.picture.pixels, again.picture.pixels)
    assert out.critique == again.critique and out.critique is not None
    assert again.program == out.program


def test_changed_input_reuses_no_stale_checks() -> None:
    """Same program, same mask (a position, not the picture's content), another input: nothing of the first is reused."""
    a = sample("astronaut")
    px = a.pixels.copy()
    px[:, : px.shape[1] // 2] //= 3  # the left half, where the mask is, darker
    b = Image(px)
    program = parse_steps('region position="left"\nblur amount=0.6', REG)
    with Agent(REG, cache=ResultCache()) as agent:
        first = execute_program(agent, a, program)
        second = execute_program(agent, b, program)
        assert first.run is not None and second.run is not None
        assert first.run.outputs["region"].content_hash == second.run.outputs["region"].content_hash  # the same mask
    fresh = scratch(b, program)
    assert first.critique != fresh.critique  # the two inputs measure differently, so stale results would show
    assert second.critique == fresh.critique
    assert np.array_equal(second.picture.pixels, fresh.picture.pixels)


def test_checks_with_a_memo_equal_checks_without() -> None:
    """Per node: the same mask over two inputs, through one memo, gives what a fresh memo gives for each."""
    ctx = None
    region = REG.get("region")
    blur, adjust = REG.get("blur"), REG.get("adjust")
    a = sample("astronaut")
    b = Image(np.ascontiguousarray(a.pixels[:, ::-1]))  # mirrored: other content, same size
    mask = region(ctx, image=a, position="center")
    shared = Memo()
    for spec, args in ((blur, {"amount": 0.5}), (adjust, {"warmth": 0.4, "brightness": 0.2})):
        for src in (a, b, a):
            out = spec(ctx, image=src, mask=mask, **args)
            call = CheckCall(node="n", tool=spec.name, args=args, ports={"image": src, "mask": mask}, output=out, source=src)
            with using(Memo()):
                want = [r for c in spec.checks for r in c(call)]
            with using(shared):
                got = [r for c in spec.checks for r in c(call)]
            assert got == want
    assert shared.hits > 0


def test_critique_reuses_unchanged_nodes_only() -> None:
    picture = sample("astronaut")
    memo = Memo()
    results = []
    for amount in (0.5, 0.5, 0.75):
        program = validate(parse_steps(f'segment target="person"\ninvert\nblur amount={amount}', REG), REG)
        with Agent(REG, cache=ResultCache()) as agent:
            run = agent.executor.run(program, {"input": picture})
        results.append(critique(program, run, {"input": picture}, REG, memo=memo))
        assert results[-1] == critique(program, run, {"input": picture}, REG)  # no memo: measured afresh
    assert results[0] == results[1]
    blur_checks = [[r for r in c.results if r.node == "blur"] for c in results]
    assert blur_checks[2] != blur_checks[0]  # the changed node was measured again


def test_derived_values_are_read_only_and_keyed_by_content() -> None:
    a = sample("coffee")
    memo = Memo()
    with using(memo):
        f1 = float_of(a)
        f2 = float_of(Image(a.pixels.copy()))  # another object, the same pixels
        f3 = float_of(Image(np.ascontiguousarray(a.pixels[::-1])))
    assert f1 is f2 and f3 is not f1 and memo.hits == 1
    with pytest.raises(ValueError, match="read-only"):
        f1[0, 0, 0] = 0.5
    assert not float_of(a).flags.writeable  # the same without a memo: a caller that writes fails either way


def test_memo_is_bounded() -> None:
    memo = Memo(max_bytes=3 * 4000)
    for i in range(5):
        memo.put(f"k{i}", np.zeros(1000, np.float32))
    assert len(memo) == 3 and memo.get("k0") is None and memo.get("k4") is not None
    memo.put("big", np.zeros(10_000, np.float32))  # larger than the bound: not kept
    assert memo.get("big") is None
    assert derived("x", (sample("coffee"),), lambda: 7) == 7  # no memo current: computed


def _plain_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> Lab as first written (experts/colors.py), the reference for the faster forms."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)
    xyz = lin @ m.T / m.sum(axis=1)
    eps = 6.0 / 29.0
    f = np.where(xyz > eps**3, np.cbrt(xyz), xyz / (3 * eps**2) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1).astype(np.float32)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "grace_hopper"])
def test_faster_measurements_equal_the_formulas(name: str) -> None:
    """The checks' table Lab, flat-pixel map and moved-pixel test give what the plain formulas gave."""
    img = sample(name)
    rgb = img.pixels.astype(np.float32) / 255.0
    assert np.array_equal(float_of(img), rgb)
    assert np.array_equal(checks.lab(img), _plain_lab(rgb)) and np.array_equal(rgb_to_lab(rgb), _plain_lab(rgb))
    with using(Memo()):
        assert np.array_equal(checks.gradient_of(img), checks.gradient(rgb))
        assert np.array_equal(checks.laplacian_of(img), cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_32F))
    some = rgb.reshape(-1, 3)[::7]  # a list of pixels, as recolor converts them
    assert np.array_equal(rgb_to_lab(some), _plain_lab(some))
    flat = (rgb <= 0.0).all(axis=-1) | (rgb >= 1.0).all(axis=-1)
    assert np.array_equal(checks.flat_of(img), flat)
    noise = np.random.default_rng(0).integers(-6, 7, img.pixels.shape)
    other = Image(np.clip(img.pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    moved = np.abs(img.pixels.astype(np.int16) - other.pixels.astype(np.int16)).max(axis=-1) > checks.KEEP_STEP
    for part in (np.s_[10:40, 20:90], np.s_[5:7, 3:4], np.s_[:, : img.width // 3]):  # an edit in a region: Lab of the rest reused
        edited = img.pixels.copy()
        edited[part] = other.pixels[part]
        with using(Memo()):
            checks.lab(img)  # remembered, as by the turn before
            assert np.array_equal(checks.lab_after(img, Image(edited)), _plain_lab(edited.astype(np.float32) / 255.0))
    assert np.array_equal(checks.lab_after(img, other), _plain_lab(other.pixels.astype(np.float32) / 255.0))
    mask = Mask(np.zeros(img.pixels.shape[:2], np.float32))
    call = CheckCall(node="n", tool="adjust", args={}, ports={"image": img, "mask": mask}, output=other)
    assert checks.keep_outside(call)[0].value == pytest.approx(float(moved[checks.erode(mask.alpha <= 0, 1)].mean()), abs=0)


def test_composite_is_exact_outside_the_mask() -> None:
    rng = np.random.default_rng(1)
    edited, original = rng.random((40, 50, 3), np.float32), rng.random((40, 50, 3), np.float32)
    alpha = np.clip(rng.random((40, 50), np.float32) * 2 - 0.5, 0, 1)
    for bad in (None, np.nan, np.inf):
        if bad is not None:
            edited[alpha <= 0] = bad  # whatever the edit made there, the original shows
        with np.errstate(invalid="ignore"):  # inf x 0
            want = edited * alpha[:, :, None] + original * (1 - alpha[:, :, None])
            got = composite(edited, original, alpha)
        want[alpha <= 0] = original[alpha <= 0]
        assert np.array_equal(got, want) and np.array_equal(got[alpha <= 0], original[alpha <= 0])


def _old_composite_to_image(edited: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[:, :, None]
    out = edited * a + rgb * (1.0 - a)
    out[alpha <= 0] = rgb[alpha <= 0]
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def test_tools_give_the_bytes_of_the_plain_formulas() -> None:
    """blur / adjust / recolor with remembered parts (kept part, weighted input, region Lab) and fewer passes make the
    same bytes as the plain formulas, on a first call and on a follow-up through the same memo."""
    pic, cof = sample("astronaut"), sample("coffee")
    person = REG.get("segment")(None, image=pic, target="person")
    background = REG.get("invert")(None, mask=person)
    red = REG.get("segment")(None, image=cof, target="red")
    rgb, alpha = pic.pixels.astype(np.float32) / 255.0, fit_mask(background, pic)
    memo = Memo()
    for amount in (0.3, 0.75, 1.0):  # sigma under and over the direct-blur limit
        sigma = max(0.5, amount * diagonal(pic) / 60.0)
        want = _old_composite_to_image(masked_blur(rgb, (alpha > 0.5).astype(np.float32), sigma), rgb, alpha)
        with using(memo):
            assert np.array_equal(REG.get("blur")(None, image=pic, mask=background, amount=amount).pixels, want)
    for saturation in (-0.6, -0.45):
        want = _old_composite_to_image(apply_tone(rgb, 0.0, 0.0, saturation, 0.0), rgb, alpha)
        with using(memo):
            assert np.array_equal(REG.get("adjust")(None, image=pic, mask=background, saturation=saturation).pixels, want)
    crgb, calpha = cof.pixels.astype(np.float32) / 255.0, fit_mask(red, cof)
    for color in ("blue", "purple"):
        edited = crgb.copy()
        edited[calpha > 0] = tint(crgb[calpha > 0], parse_color(color))
        with using(memo):
            assert np.array_equal(REG.get("recolor")(None, image=cof, mask=red, color=color).pixels,
                                  _old_composite_to_image(edited, crgb, calpha))
    assert memo.hits > 0


def test_store_keeps_recent_pictures_decoded(tmp_path: Path) -> None:
    """A chat reads its base picture every turn: the store decodes it once; every read is its own value, same pixels."""
    store = Store(tmp_path)
    pic = sample("coffee")
    digest = store.pictures.put(pic)
    first, again = store.picture(digest), store.picture(digest)
    assert np.array_equal(first.pixels, pic.pixels) and first.content_hash == digest
    assert again is not first and again.pixels is first.pixels  # decoded once
    again.meta["note"] = "x"
    assert store.picture(digest).meta == {}
    assert np.array_equal(Store(tmp_path).picture(digest).pixels, pic.pixels)  # the file itself holds the same pixels
