"""Catalogue v2's classical tools on real photos, and on degradations made here: each must measurably undo its
degradation (PSNR, sharpness, contrast against the clean original) and leave what it must not touch exact."""

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from skimage.metrics import peak_signal_noise_ratio as psnr

from banana.agent.samples import sample
from banana.experts.captions import add_text
from banana.experts.enhance import dehaze, denoise, enhance, sharpen
from banana.experts.geometry import border, flip, horizon_tilt, inner_box, rotate, rotate_pixels, straighten
from banana.experts.perception import segment_alpha
from banana.experts.pixelate import pixelate
from banana.experts.retouch import retouch
from banana.experts.tone import adjust
from banana.tools.values import Image, Mask


def box_mask(image, x0, y0, x1, y1):
    a = np.zeros((image.height, image.width), np.float32)
    a[y0:y1, x0:x1] = 1
    return Mask(a)


def laplacian_var(pixels):
    return cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


def as_float(image):
    return image.pixels.astype(np.float32) / 255.0


def from_float(arr):
    return Image(np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def noisy_pair():
    clean = sample("chelsea")
    rng = np.random.default_rng(0)
    return clean, Image(np.clip(clean.pixels + rng.normal(0, 20, clean.pixels.shape), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- restoration


def test_denoise_raises_psnr(noisy_pair):
    clean, noisy = noisy_pair
    out = denoise(image=noisy)
    assert psnr(clean.pixels, out.pixels) > psnr(clean.pixels, noisy.pixels) + 4.0
    assert 14 < out.meta["noise_sigma"] < 26  # the estimate sees the sigma-20 noise


def test_denoise_inside_mask_only(noisy_pair):
    clean, noisy = noisy_pair
    left = box_mask(noisy, 0, 0, 200, noisy.height)
    out = denoise(image=noisy, mask=left).pixels
    assert np.array_equal(out[:, 200:], noisy.pixels[:, 200:])
    assert psnr(clean.pixels[:, :200], out[:, :200]) > psnr(clean.pixels[:, :200], noisy.pixels[:, :200]) + 3.0


def test_sharpen_undoes_some_blur(photos):
    clean = photos["coffee"]
    blurred = Image(cv2.GaussianBlur(clean.pixels, (0, 0), 2.0))
    out = sharpen(image=blurred, amount=0.8)
    assert laplacian_var(out.pixels) > 1.8 * laplacian_var(blurred.pixels)
    assert psnr(clean.pixels, out.pixels) > psnr(clean.pixels, blurred.pixels)  # sharper, and closer to the original
    stronger = sharpen(image=blurred, amount=1.0)
    assert laplacian_var(stronger.pixels) > laplacian_var(sharpen(image=blurred, amount=0.2).pixels)


def test_sharpen_inside_mask_only(astronaut):
    m = box_mask(astronaut, 100, 100, 300, 300)
    out = sharpen(image=astronaut, mask=m).pixels
    outside = np.ones(out.shape[:2], bool)
    outside[100:300, 100:300] = False
    assert np.array_equal(out[outside], astronaut.pixels[outside])
    assert laplacian_var(out[100:300, 100:300]) > laplacian_var(astronaut.pixels[100:300, 100:300])


def haze(image, air=(0.86, 0.88, 0.92)):
    """I = J t + A (1 - t), thicker towards the top as haze over a landscape is."""
    t = np.linspace(0.35, 0.8, image.height, dtype=np.float32)[:, None, None]
    return from_float(as_float(image) * t + np.asarray(air, np.float32) * (1.0 - t))


@pytest.mark.parametrize("name", ["china", "coffee"])
def test_dehaze_restores_contrast_and_psnr(photos, name):
    clean = photos[name]
    hazy = haze(clean)
    out = dehaze(image=hazy)
    assert out.pixels.std() > hazy.pixels.std() * 1.1
    assert psnr(clean.pixels, out.pixels) > psnr(clean.pixels, hazy.pixels) + 4.0
    assert np.allclose(out.meta["airlight"], (0.86, 0.88, 0.92), atol=0.08)  # found the haze colour


def balance(pixels):
    """The gray-world colour balance: the channel means over their mean (1, 1, 1 is neutral)."""
    m = pixels.reshape(-1, 3).astype(float).mean(axis=0)
    return m / m.mean()


def test_enhance_moves_a_dark_colour_cast_photo_toward_the_original(astronaut):
    clean = astronaut
    spoiled = from_float(as_float(clean) * np.array([0.45, 0.4, 0.28], np.float32))  # dim and orange
    out = enhance(image=spoiled)
    assert abs(out.pixels.mean() - clean.pixels.mean()) < 0.6 * abs(spoiled.pixels.mean() - clean.pixels.mean())
    cast_before = np.linalg.norm(balance(spoiled.pixels) - balance(clean.pixels))
    assert np.linalg.norm(balance(out.pixels) - balance(clean.pixels)) < 0.6 * cast_before
    assert psnr(clean.pixels, out.pixels) > psnr(clean.pixels, spoiled.pixels) + 3.0
    assert out.meta["gamma"] < 1.0  # it lifted the low light


def test_enhance_inside_mask_only(astronaut):
    m = box_mask(astronaut, 0, 0, 256, 512)
    out = enhance(image=astronaut, mask=m).pixels
    assert np.array_equal(out[:, 256:], astronaut.pixels[:, 256:])
    assert not np.array_equal(out[:, :256], astronaut.pixels[:, :256])


# ---------------------------------------------------------------- skin and mosaic


def high_frequency(pixels):
    g = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(g - cv2.GaussianBlur(g, (0, 0), 2.0))


def test_retouch_smooths_skin_only(photos):
    hopper = photos["grace_hopper"]
    skin = segment_alpha(hopper, "skin")
    out = retouch(image=hopper).pixels
    inside, outside = skin > 0.9, skin == 0
    assert inside.sum() > 5000 and outside.sum() > 0.5 * skin.size
    assert high_frequency(out)[inside].mean() < 0.7 * high_frequency(hopper.pixels)[inside].mean()
    assert np.array_equal(out[outside], hopper.pixels[outside])  # eyes, hair, uniform, background
    assert np.abs(out[inside].astype(float) - hopper.pixels[inside]).mean() < 12  # smoothed, not repainted


def test_retouch_takes_a_mask_and_refuses_an_empty_one(astronaut):
    m = box_mask(astronaut, 180, 60, 300, 200)
    out = retouch(image=astronaut, mask=m, amount=1.0).pixels
    assert np.array_equal(out[250:], astronaut.pixels[250:])
    with pytest.raises(ValueError, match="retouch: the mask selects no skin"):
        retouch(image=astronaut, mask=Mask(np.zeros((512, 512), np.float32)))


def test_pixelate_whole_picture_makes_constant_blocks(photos):
    coffee = photos["coffee"]  # 400 x 600: 600 is not a multiple of 16, the last column of blocks is partial
    out = pixelate(image=coffee, block=16).pixels
    for by, bx in [(0, 0), (3, 7), (24, 37)]:
        where = (slice(by * 16, (by + 1) * 16), slice(bx * 16, (bx + 1) * 16))
        block = out[where].reshape(-1, 3)
        assert (block == block[0]).all()
        assert np.abs(block[0].astype(float) - coffee.pixels[where].reshape(-1, 3).mean(0)).max() <= 0.5


def test_pixelate_mask_touches_whole_blocks_and_nothing_else(astronaut):
    m = box_mask(astronaut, 170, 70, 300, 210)  # not on the 20 px grid
    out = pixelate(image=astronaut, mask=m, block=20).pixels
    grown = np.zeros((512, 512), bool)
    grown[60:220, 160:300] = True  # the blocks the box touches
    assert np.array_equal(out[~grown], astronaut.pixels[~grown])
    block = out[80:100, 180:200].reshape(-1, 3)
    assert (block == block[0]).all() and not np.array_equal(out[grown], astronaut.pixels[grown])
    with pytest.raises(ValidationError):
        pixelate(image=astronaut, block=1)


# ---------------------------------------------------------------- geometry


def test_rotate_quarter_turns_are_exact(photos):
    coffee = photos["coffee"]
    turned = rotate(image=coffee, degrees=90)
    assert turned.pixels.shape == (600, 400, 3)
    assert np.array_equal(turned.pixels[0, 0], coffee.pixels[0, -1])  # counter-clockwise: the top-right corner comes to the top-left
    assert np.array_equal(rotate(image=turned, degrees=-90).pixels, coffee.pixels)
    assert np.array_equal(rotate(image=coffee, degrees=360).pixels, coffee.pixels)


def test_rotate_any_angle_expands_or_keeps_the_size(astronaut):
    wide = rotate(image=astronaut, degrees=30)
    side = round(512 * (np.cos(np.pi / 6) + np.sin(np.pi / 6)))
    assert abs(wide.width - side) <= 1 and abs(wide.height - side) <= 1
    assert wide.pixels[0, 0].max() == 0  # the corner is fill
    same = rotate(image=astronaut, degrees=30, expand=False)
    assert same.pixels.shape == astronaut.pixels.shape
    centre = (slice(236, 276), slice(236, 276))
    assert np.abs(same.pixels[centre].astype(float).mean() - astronaut.pixels[centre].astype(float).mean()) < 20
    with pytest.raises(ValidationError):
        rotate(image=astronaut, degrees=400)


def test_flip_twice_is_identity(photos):
    for direction in ("horizontal", "vertical"):
        once = flip(image=photos["china"], direction=direction)
        assert not np.array_equal(once.pixels, photos["china"].pixels)
        assert np.array_equal(flip(image=once, direction=direction).pixels, photos["china"].pixels)
    assert np.array_equal(flip(image=photos["china"]).pixels[:, 0], photos["china"].pixels[:, -1])


@pytest.fixture(scope="module")
def landscape():
    """A horizon from two real photos: china's sky over a field of flowers."""
    sky = cv2.resize(sample("china").pixels[:150, 420:640], (640, 200), interpolation=cv2.INTER_CUBIC)
    return Image(np.concatenate([sky, sample("flower").pixels[:227]], axis=0))


def tilted(image, degrees):
    """What a camera held askew takes: the scene turned, no empty corners."""
    turned = rotate_pixels(image.pixels, degrees, expand=False)
    w, h = inner_box(image.width, image.height, degrees)
    y0, x0 = (image.height - h) // 2, (image.width - w) // 2
    return Image(np.ascontiguousarray(turned[y0 : y0 + h, x0 : x0 + w]))


@pytest.mark.parametrize("degrees", [5.0, -5.0])
def test_straighten_levels_a_tilted_horizon(landscape, degrees):
    assert abs(horizon_tilt(landscape.pixels)) < 0.5
    askew = tilted(landscape, degrees)
    assert abs(horizon_tilt(askew.pixels) - degrees) < 1.0
    out = straighten(image=askew)
    assert abs(out.meta["tilt_degrees"] - degrees) < 1.0
    assert abs(horizon_tilt(out.pixels)) < 1.0
    assert out.width < askew.width and out.pixels[0, 0].max() > 0 and out.pixels[-1, -1].max() > 0  # corners cropped, not black


def test_straighten_refuses_a_picture_without_lines():
    rng = np.random.default_rng(1)
    clouds = cv2.GaussianBlur(rng.random((200, 300, 3), np.float32), (0, 0), 8)
    with pytest.raises(ValueError, match="straighten found no long, near-horizontal line"):
        straighten(image=from_float(clouds / clouds.max()))


def test_border_adds_the_right_size_and_colour(photos):
    flower = photos["flower"]
    out = border(image=flower, pixels=25, color="navy").pixels
    assert out.shape == (flower.height + 50, flower.width + 50, 3)
    navy = np.array([0, 0, 128], np.uint8)
    frame = np.ones(out.shape[:2], bool)
    frame[25:-25, 25:-25] = False
    assert (out[frame] == navy).all()
    assert np.array_equal(out[25:-25, 25:-25], flower.pixels)
    with pytest.raises(ValueError, match="unknown colour 'nayv'"):
        border(image=flower, pixels=5, color="nayv")


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [("top", (0, 1 / 3), (0.15, 0.85)), ("bottom", (2 / 3, 1), (0.15, 0.85)), ("center", (1 / 3, 2 / 3), (0.15, 0.85)),
     ("top-left", (0, 1 / 3), (0, 0.5)), ("bottom-right", (2 / 3, 1), (0.5, 1))],
)
def test_add_text_changes_only_its_region(photos, position, rows, cols):
    china = photos["china"]
    out = add_text(image=china, text="Summer 2024", position=position, color="yellow")
    changed = np.any(out.pixels != china.pixels, axis=2)
    ys, xs = np.nonzero(changed)
    h, w = china.height, china.width
    assert changed.sum() > 500
    assert rows[0] * h <= ys.min() and ys.max() < rows[1] * h
    assert cols[0] * w <= xs.min() and xs.max() < cols[1] * w
    x0, y0, x1, y1 = out.meta["text_box"]
    assert x0 <= xs.min() and xs.max() < x1 + 1 and y0 <= ys.min() and ys.max() < y1 + 1
    yellow = (out.pixels[..., 0] > 200) & (out.pixels[..., 1] > 200) & (out.pixels[..., 2] < 60) & changed
    assert yellow.sum() > 200  # the letters are in the colour asked for


def test_add_text_size_wrapping_and_bad_text(astronaut):
    small = add_text(image=astronaut, text="Hi", size=0.05).meta["text_box"]
    big = add_text(image=astronaut, text="Hi", size=0.2).meta["text_box"]
    assert (big[3] - big[1]) > 3 * (small[3] - small[1])
    long = add_text(image=astronaut, text="a caption far too long to fit on one line of this picture", size=0.1).meta["text_box"]
    assert long[0] >= 0 and long[2] <= 512 and (long[3] - long[1]) > 2 * 0.1 * 512  # wrapped onto lines, inside the picture
    with pytest.raises(ValidationError, match="printable"):
        add_text(image=astronaut, text="two\nlines")
    with pytest.raises(ValidationError):
        add_text(image=astronaut, text="x" * 121)


# ---------------------------------------------------------------- adjust: hue, shadows, highlights


def test_adjust_new_amounts_at_zero_are_bit_identical(astronaut):
    assert np.array_equal(adjust(image=astronaut, hue=0, shadows=0, highlights=0).pixels, astronaut.pixels)
    assert np.array_equal(
        adjust(image=astronaut, brightness=0.3, hue=0.0).pixels, adjust(image=astronaut, brightness=0.3).pixels
    )


def mean_hue(pixels, where):
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL)  # hue in 0..255 for the whole circle
    angles = hsv[..., 0][where].astype(float) / 256.0 * 2 * np.pi
    return np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()))


def test_adjust_hue_turns_the_colour_circle(photos):
    flower = photos["flower"]
    hsv = cv2.cvtColor(flower.pixels, cv2.COLOR_RGB2HSV)
    vivid = hsv[..., 1] > 100
    for shift, degrees in [(0.25, 45.0), (-0.25, -45.0)]:
        out = adjust(image=flower, hue=shift).pixels
        turned = (mean_hue(out, vivid) - mean_hue(flower.pixels, vivid) + 180) % 360 - 180
        assert abs(turned - degrees) < 8
    lum = cv2.cvtColor(flower.pixels, cv2.COLOR_RGB2GRAY).astype(float)
    assert abs(cv2.cvtColor(adjust(image=flower, hue=0.5).pixels, cv2.COLOR_RGB2GRAY).mean() - lum.mean()) < 15


@pytest.mark.parametrize(("arg", "amount"), [("shadows", 0.6), ("shadows", -0.6), ("highlights", 0.6), ("highlights", -0.6)])
def test_adjust_shadows_and_highlights_move_their_tones(astronaut, arg, amount):
    grey = cv2.cvtColor(astronaut.pixels, cv2.COLOR_RGB2GRAY)
    dark, bright = grey < 60, grey > 190
    delta = adjust(image=astronaut, **{arg: amount}).pixels.astype(float).mean(2) - astronaut.pixels.astype(float).mean(2)
    target, other = (dark, bright) if arg == "shadows" else (bright, dark)
    moved = delta[target].mean()
    assert np.sign(moved) == np.sign(amount) and abs(moved) > 2.0
    assert abs(delta[other].mean()) < 0.25 * abs(moved)


def test_adjust_shadows_inside_mask_only(astronaut):
    m = box_mask(astronaut, 0, 256, 512, 512)
    out = adjust(image=astronaut, mask=m, shadows=0.8).pixels
    assert np.array_equal(out[:256], astronaut.pixels[:256])
    assert out[256:].mean() > astronaut.pixels[256:].mean() + 5


# ---------------------------------------------------------------- the planner's surfaces

STEPS = [
    "sharpen amount=0.7",
    'segment target="background"\ndenoise',
    "dehaze amount=1.0",
    "enhance",
    "retouch",
    'segment target="face"\nretouch amount=0.6',
    "detect_faces\nmask_from_boxes\npixelate block=24",
    "rotate degrees=90",
    "rotate degrees=-12.5 expand=false",
    'flip direction="vertical"',
    "straighten",
    'border pixels=30 color="black"',
    'add_text text="Happy birthday!" position="top-left" color="gold" size=0.1',
    "adjust hue=0.3 shadows=0.4 highlights=-0.2",
]


@pytest.mark.parametrize("text", STEPS)
def test_steps_express_every_new_tool(registry, text):
    from banana.agent.program import validate
    from banana.agent.surface import canonical, parse_steps, to_steps

    program = parse_steps(text, registry)
    validate(program, registry, inputs={"input": "Image"})
    assert canonical(parse_steps(to_steps(program, registry), registry), registry) == canonical(program, registry)


def test_steps_grammar_takes_the_new_tools(registry):
    import xgrammar as xgr
    from transformers import AutoTokenizer

    from banana.agent.planner.model import base_model_dir, im_end_id
    from banana.agent.surface import steps_grammar

    tok = AutoTokenizer.from_pretrained(base_model_dir(), local_files_only=True)
    info = xgr.TokenizerInfo.from_huggingface(tok, stop_token_ids=[im_end_id(tok)])
    compiled = xgr.GrammarCompiler(info).compile_grammar(steps_grammar(registry))

    def accepts(text):
        return xgr.GrammarMatcher(compiled).accept_string(text)

    for text in STEPS:
        assert accepts(text + "\n"), text
    assert accepts("rotate degrees=-180\n")  # wider numbers where the bounds are wider
    assert not accepts("rotate degrees=1000\n")
    assert not accepts("adjust hue=10\n")  # amounts keep one digit
    assert not accepts('flip direction="diagonal"\n')
    assert not accepts('add_text text="Hi" position="middle"\n')
