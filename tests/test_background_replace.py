"""replace_background on real photos: colour, gradient, picture file, prompt (generative or labelled fallback)."""

import cv2
import numpy as np
import pytest

from banana.experts.background import replace_background
from banana.tools.files import ReadPolicy
from banana.tools.spec import ToolContext
from banana.tools.values import Mask
from tests.backbones import classical, installed


@pytest.fixture(scope="module")
def subject(photos):
    """Astronaut with a hand-made elliptical foreground, its solid inside and its clear outside."""
    image = photos["astronaut"]
    alpha = np.zeros((image.height, image.width), np.uint8)
    cv2.ellipse(alpha, (230, 300), (150, 260), 0, 0, 360, 1, -1)
    inside = cv2.erode(alpha, np.ones((9, 9), np.uint8)).astype(bool)
    outside = ~cv2.dilate(alpha, np.ones((9, 9), np.uint8)).astype(bool)
    return image, Mask(alpha.astype(np.float32)), inside, outside


def sharpness(pixels: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_colour_background_keeps_the_foreground_exactly(subject):
    image, mask, inside, outside = subject
    out = replace_background(image=image, mask=mask, color="navy")
    assert np.array_equal(out.pixels[inside], image.pixels[inside])
    assert (out.pixels[outside] == (0, 0, 128)).all()
    assert out.meta == {"background": "color"}


def test_edge_is_feathered_inwards_without_old_background_halo(subject):
    image, mask, _, _ = subject
    out = replace_background(image=image, mask=mask, color="#00ff00").pixels.astype(int)
    outside_mask = mask.alpha == 0
    assert (out[outside_mask] == (0, 255, 0)).all(), "the old background leaked past the mask"
    rim = (mask.alpha == 1) & ~cv2.erode(mask.alpha, np.ones((3, 3), np.uint8)).astype(bool)
    mixed = out[rim][:, 1] != image.pixels[rim][:, 1].astype(int)
    assert mixed.mean() > 0.5, "a hard edge: the rim should blend a little"


def test_gradient_runs_from_color_to_color2(subject):
    image, mask, _, _ = subject
    out = replace_background(image=image, mask=mask, color="gold", color2="#202060")
    assert out.meta["background"] == "gradient"
    px = out.pixels.astype(int)
    assert np.abs(px[0, 5] - (255, 215, 0)).max() <= 1
    assert np.abs(px[-1, 5] - (0x20, 0x20, 0x60)).max() <= 1
    middle = px[image.height // 2, 5]
    assert np.abs(middle - ((255 + 0x20) / 2, (215 + 0x20) / 2, 0x60 / 2)).max() < 4


def test_file_background_covers_the_frame(subject, photos, tmp_path):
    image, mask, inside, outside = subject
    path = photos["coffee"].save(tmp_path / "coffee.png")
    granted = ToolContext(files=ReadPolicy(dirs=[tmp_path]))
    out = replace_background(granted, image=image, mask=mask, file=str(path)).pixels
    assert np.array_equal(out[inside], image.pixels[inside])
    coffee = photos["coffee"].pixels  # 400 x 600: covering 512 x 512 scales to 512 x 768 and crops the middle
    expected = cv2.resize(coffee, (768, 512), interpolation=cv2.INTER_CUBIC)[:, 128:640]
    assert np.abs(out[outside].astype(int) - expected[outside]).mean() < 2


def test_arguments_are_checked(subject, tmp_path):
    image, mask, _, _ = subject
    with pytest.raises(ValueError, match="exactly one of color, prompt or file; got none"):
        replace_background(image=image, mask=mask)
    with pytest.raises(ValueError, match=r"got \['color', 'prompt'\]"):
        replace_background(image=image, mask=mask, color="red", prompt="a beach")
    with pytest.raises(ValueError, match="give color as well"):
        replace_background(image=image, mask=mask, color2="red", file="x.png")
    granted = ToolContext(files=ReadPolicy(dirs=[tmp_path]))
    with pytest.raises(ValueError, match=r"file '.*missing\.png' is not readable by this program"):
        replace_background(granted, image=image, mask=mask, file=str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes\.png: not an image file PIL can read"):
        replace_background(granted, image=image, mask=mask, file=str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match=r"notes\.png' is not readable by this program"):  # nothing granted: refused unread
        replace_background(image=image, mask=mask, file=str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match="unknown colour"):
        replace_background(image=image, mask=mask, color="sky-ish")


def test_prompt_without_weights_is_a_labelled_faded_background(subject):
    image, mask, inside, outside = subject
    with installed(classical()):
        out = replace_background(image=image, mask=mask, prompt="a beach at sunset")
    assert out.meta["fallback"] is True and "not replaced with 'a beach at sunset'" in out.meta["note"]
    assert np.array_equal(out.pixels[inside], image.pixels[inside])
    bg, old = out.pixels[outside].astype(float), image.pixels[outside].astype(float)
    assert bg.std(axis=1).mean() < 0.5 * old.std(axis=1).mean(), "the fallback background should be desaturated"
    box = (slice(0, 40), slice(440, 512))  # top-right corner, far from the subject
    assert sharpness(out.pixels[box]) < 0.3 * sharpness(image.pixels[box])


def test_prompt_with_a_generative_backbone_paints_the_background(subject, tiny_backbone):
    image, mask, inside, outside = subject
    with installed(tiny_backbone):
        out = replace_background(image=image, mask=mask, prompt="a beach")
    assert out.meta["backbone"] == "diffusers" and "fallback" not in out.meta
    assert np.abs(out.pixels[outside].astype(int) - image.pixels[outside].astype(int)).mean() > 10, "background not repainted"
    assert np.array_equal(out.pixels[inside], image.pixels[inside])
