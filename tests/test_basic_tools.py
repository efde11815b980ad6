"""Pixel-level checks of the first real tools on real photos."""

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from banana.experts.background import blur
from banana.experts.geometry import crop
from banana.experts.masks import combine, grow, invert
from banana.experts.tone import adjust
from banana.tools.values import Boxes, Mask


def box_mask(image, x0, y0, x1, y1):
    a = np.zeros((image.height, image.width), np.float32)
    a[y0:y1, x0:x1] = 1
    return Mask(a)


def sharpness(pixels):
    return cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


def test_mask_algebra(astronaut):
    a = box_mask(astronaut, 0, 0, 100, 100)
    b = box_mask(astronaut, 50, 50, 150, 150)
    assert invert(mask=a).alpha[10, 10] == 0 and invert(mask=a).alpha[200, 200] == 1
    assert combine(a=a, b=b, op="union").area == pytest.approx((2 * 100 * 100 - 50 * 50) / 512 ** 2)
    assert combine(a=a, b=b, op="intersect").area == pytest.approx(50 * 50 / 512 ** 2)
    assert combine(a=a, b=b, op="subtract").area == pytest.approx((100 * 100 - 50 * 50) / 512 ** 2)
    grown = grow(mask=a, pixels=10)
    assert grown.alpha[105, 50] == 1 and grown.alpha[115, 50] == 0
    assert grow(mask=a, pixels=-10).alpha[95, 50] == 0


def test_masked_blur_keeps_inside_and_blurs_outside(astronaut):
    keep = box_mask(astronaut, 150, 30, 350, 250)  # around the face
    out = blur(image=astronaut, mask=invert(mask=keep), amount=0.8).pixels
    inside = (slice(40, 240), slice(160, 340))
    assert np.array_equal(out[inside], astronaut.pixels[inside])
    bg = (slice(300, 512), slice(0, 512))
    assert sharpness(out[bg]) < 0.5 * sharpness(astronaut.pixels[bg])


def test_masked_blur_has_no_halo(astronaut):
    """Pixels just outside a white square must not pick up its colour (normalised convolution)."""
    px = np.zeros((200, 200, 3), np.uint8)
    px[60:140, 60:140] = 255
    from banana.tools.values import Image
    image = Image(px)
    subject = box_mask(image, 60, 60, 140, 140)
    out = blur(image=image, mask=invert(mask=subject), amount=1.0).pixels
    assert out[30, 100].max() == 0 and out[145, 100].max() == 0


def test_whole_blur_reduces_sharpness(astronaut):
    assert sharpness(blur(image=astronaut, amount=0.3).pixels) < 0.2 * sharpness(astronaut.pixels)


def test_adjust_directions_and_identity(astronaut):
    base = astronaut.pixels.astype(float)
    assert np.array_equal(adjust(image=astronaut).pixels, astronaut.pixels)
    assert adjust(image=astronaut, brightness=0.5).pixels.mean() > base.mean() + 20
    assert adjust(image=astronaut, brightness=-0.5).pixels.mean() < base.mean() - 20
    grey = adjust(image=astronaut, saturation=-1).pixels.astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1
    vivid = adjust(image=astronaut, saturation=0.8).pixels.astype(float)
    assert vivid.std(axis=2).mean() > base.std(axis=2).mean() * 1.3
    warm = adjust(image=astronaut, warmth=0.8).pixels.astype(float)
    assert (warm[..., 0] - warm[..., 2]).mean() > (base[..., 0] - base[..., 2]).mean() + 20
    flat = adjust(image=astronaut, contrast=-0.8).pixels.astype(float)
    assert flat.std() < 0.4 * base.std()


def test_adjust_inside_mask_only(photos):
    coffee = photos["coffee"]
    m = box_mask(coffee, 0, 0, 200, coffee.height)
    out = adjust(image=coffee, mask=m, brightness=0.6).pixels
    assert np.array_equal(out[:, 200:], coffee.pixels[:, 200:])
    assert out[:, :200].mean() > coffee.pixels[:, :200].mean() + 20
    assert structural_similarity(out[:, :200], coffee.pixels[:, :200], channel_axis=2) < 0.95  # the masked side really changed


def test_crop_variants(photos):
    china = photos["china"]
    sq = crop(image=china, aspect="1:1").pixels
    assert sq.shape == (china.height, china.height, 3)
    wide = crop(image=china, aspect="16:9").pixels
    assert abs(wide.shape[1] / wide.shape[0] - 16 / 9) < 0.01
    b = crop(image=china, boxes=Boxes(((10, 20, 110, 70),)), margin=0.0).pixels
    assert np.array_equal(b, china.pixels[20:70, 10:110])
    with pytest.raises(ValueError, match="exactly one of boxes, box or aspect"):
        crop(image=china, aspect="1:1", box=[0, 0, 5, 5])
    with pytest.raises(ValueError, match="nothing was detected"):
        crop(image=china, boxes=Boxes(()))
