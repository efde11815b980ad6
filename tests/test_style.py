"""stylize on real photos: 26 neural styles + 5 OpenCV looks, names, nearest-style matching, strength, mask."""

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from banana.experts.style import CLASSICAL, NEURAL, STYLES, resolve_style, stylize
from banana.tools.values import Image, Mask


@pytest.fixture(scope="module")
def small(photos) -> Image:
    """256 px keeps the suite fast; the styles behave the same at 512."""
    return Image(cv2.resize(photos["astronaut"].pixels, (256, 256), interpolation=cv2.INTER_AREA))


def ssim(a: Image, b: Image) -> float:
    return float(structural_similarity(a.pixels, b.pixels, channel_axis=2))


def test_every_style_has_a_distinct_name_and_neural_index():
    assert len(NEURAL) == 26 and len(CLASSICAL) == 5
    assert len(STYLES) == 31, "style names must be unique"
    assert sorted(s.index for s in STYLES.values() if s.index is not None) == list(range(26))


@pytest.mark.parametrize("style", ["starry night", "mosaic", "stained glass", "pencil", "sketch", "cartoon", "watercolor"])
def test_stylize_changes_the_picture_a_lot(small, style):
    out = stylize(image=small, style=style)
    assert out.pixels.shape == small.pixels.shape
    assert out.meta["style"] == style
    assert ssim(out, small) < 0.6


def test_oil_is_a_milder_but_real_change(small):
    out = stylize(image=small, style="oil")
    assert 0.3 < ssim(out, small) < 0.85


def test_style_names_are_forgiving_and_numbers_work(small):
    assert resolve_style("Starry-Night style")[0].name == "starry night"
    style, meta = resolve_style("style 7")
    assert style.index == 7 and meta == {"style": NEURAL[7][0], "requested": "style 7"}
    assert resolve_style("#19")[0].name == "starry night"
    with pytest.raises(ValueError, match="numbered 0 to 25"):
        resolve_style("style 40")


@pytest.mark.slow
def test_unknown_style_maps_to_the_nearest_by_meaning(small):
    out = stylize(image=small, style="van gogh")
    assert out.meta["style"] == "starry night" and out.meta["requested"] == "van gogh"
    assert 0.3 < out.meta["similarity"] <= 1.0
    assert resolve_style("charcoal drawing")[0].name == "pencil"
    assert resolve_style("old photograph")[0].name == "sepia"


def test_strength_blends_with_the_original(small):
    weak = stylize(image=small, style="starry night", strength=0.3)
    full = stylize(image=small, style="starry night", strength=1.0)
    assert ssim(weak, small) > ssim(full, small) + 0.2
    assert weak.meta["strength"] == 0.3


def test_mask_limits_the_effect(small):
    alpha = np.zeros((256, 256), np.float32)
    alpha[:, :128] = 1.0
    out = stylize(image=small, mask=Mask(alpha), style="mosaic").pixels
    assert np.array_equal(out[:, 128:], small.pixels[:, 128:])
    assert structural_similarity(out[:, :128], small.pixels[:, :128], channel_axis=2) < 0.6


def test_large_pictures_are_rendered_at_a_bounded_size(photos):
    big = Image(cv2.resize(photos["coffee"].pixels, (1500, 1000)))
    out = stylize(image=big, style="bricks")
    assert out.pixels.shape == big.pixels.shape
    assert ssim(out, big) < 0.6
