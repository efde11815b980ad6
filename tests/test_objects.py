"""Object edits on real photos: remove (routed Telea / PatchMatch), recolor, replace (generative or labelled fallback)."""

import cv2
import numpy as np
import pytest

from banana.experts.objects import hole_for, recolor, remove, replace
from banana.tools.values import Image, Mask
from tests.backbones import classical, installed

RED = (255, 0, 0)


def disk(image: Image, center: tuple[int, int], radius: int) -> Mask:
    a = np.zeros((image.height, image.width), np.float32)
    cv2.circle(a, center, radius, 1.0, -1)
    return Mask(a)


def with_red_disk(image: Image, center: tuple[int, int], radius: int) -> Image:
    px = image.pixels.copy()
    cv2.circle(px, center, radius, RED, -1)
    return Image(px)


def red_pixels(pixels: np.ndarray) -> int:
    p = pixels.astype(int)
    return int(((p[..., 0] > 180) & (p[..., 1] < 80) & (p[..., 2] < 80)).sum())


@pytest.mark.parametrize(("name", "center", "radius", "expert"), [
    ("chelsea", (300, 200), 3, "telea"),
    ("chelsea", (150, 120), 45, "patchmatch"),
    ("china", (500, 300), 60, "patchmatch"),
])
def test_remove_leaves_no_trace_and_routes_by_hole_size(photos, name, center, radius, expert):
    photo = photos[name]
    painted = with_red_disk(photo, center, radius)
    mask = disk(photo, center, radius)
    out = remove(image=painted, mask=mask)
    hole = hole_for(mask, painted, "remove").pixels > 0

    assert out.meta["route"]["expert"] == expert
    assert expert in out.meta["route"]["costs"]
    assert red_pixels(painted.pixels[hole]) > 0
    assert red_pixels(out.pixels[hole]) <= red_pixels(photo.pixels[hole]), "the red disk left a trace"
    assert np.array_equal(out.pixels[~hole], painted.pixels[~hole]), "pixels outside the grown hole changed"
    # The fill looks like its surroundings: mean colour close to a ring just outside the hole.
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~hole
    assert np.abs(out.pixels[hole].mean(0) - photo.pixels[ring].mean(0)).max() < 40


def test_routing_records_every_applicable_expert(photos):
    photo = photos["chelsea"]
    small = remove(image=photo, mask=disk(photo, (100, 100), 3)).meta["route"]
    large = remove(image=photo, mask=disk(photo, (200, 150), 40)).meta["route"]
    assert set(small["costs"]) == {"telea", "patchmatch", "fsr"}
    assert small["costs"]["telea"] < small["costs"]["patchmatch"]
    assert set(large["costs"]) == {"patchmatch", "fsr"}, "Telea must not fill a thick hole"


def test_remove_grows_past_a_soft_edge(photos):
    """An anti-aliased red disk with a soft mask: its faint pink rim must go too."""
    photo = photos["chelsea"]
    px = photo.pixels.copy()
    cv2.circle(px, (250, 150), 30, RED, -1, lineType=cv2.LINE_AA)
    soft = cv2.GaussianBlur(disk(photo, (250, 150), 30).alpha, (0, 0), 2)
    out = remove(image=Image(px), mask=Mask(soft)).pixels.astype(int)
    redness = out[..., 0] - out[..., 1:].max(axis=2)
    original = photo.pixels.astype(int)
    assert redness[110:190, 210:290].max() <= (original[..., 0] - original[..., 1:].max(axis=2))[110:190, 210:290].max() + 25


def test_remove_refuses_empty_or_total_masks(photos):
    photo = photos["coffee"]
    with pytest.raises(ValueError, match="empty mask"):
        remove(image=photo, mask=Mask(np.zeros((photo.height, photo.width), np.float32)))
    with pytest.raises(ValueError, match="too little is left"):
        remove(image=photo, mask=Mask(np.ones((photo.height, photo.width), np.float32)))


def lab(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def hue_deg(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL)[..., 0].astype(float) * 360.0 / 256.0


def circular_mean_deg(deg: np.ndarray) -> float:
    r = np.deg2rad(deg)
    return float(np.rad2deg(np.arctan2(np.sin(r).mean(), np.cos(r).mean())) % 360)


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def test_recolor_sky_purple_keeps_lightness_and_the_rest(photos):
    china = photos["china"]
    p = china.pixels.astype(int)
    sky = (p[..., 2] - p[..., 0] > 15) & (p[..., 2] > 150)
    sky[china.height // 2 :] = False  # the lake is blue too
    assert sky.mean() > 0.05
    out = recolor(image=china, mask=Mask(sky), color="purple").pixels

    assert np.array_equal(out[~sky], china.pixels[~sky])
    purple_hue = float(hue_deg(np.array([[[128, 0, 128]]], np.uint8))[0, 0])
    assert hue_distance(circular_mean_deg(hue_deg(out)[sky]), purple_hue) < 20
    before, after = lab(china.pixels)[..., 0][sky], lab(out)[..., 0][sky]
    assert np.corrcoef(before, after)[0, 1] > 0.9
    assert np.abs(before - after).mean() < 2.0


def test_recolor_keeps_texture_on_fur(photos):
    cat = photos["chelsea"]
    box = np.zeros((cat.height, cat.width), bool)
    box[50:250, 100:350] = True
    out = recolor(image=cat, mask=Mask(box), color="#1e90ff").pixels
    target = float(hue_deg(np.array([[[0x1E, 0x90, 0xFF]]], np.uint8))[0, 0])
    assert hue_distance(circular_mean_deg(hue_deg(out)[box]), target) < 20
    assert np.corrcoef(lab(cat.pixels)[..., 0][box], lab(out)[..., 0][box])[0, 1] > 0.95
    assert np.array_equal(out[~box], cat.pixels[~box])


def test_recolor_rejects_unknown_colours_with_examples(photos):
    photo = photos["coffee"]
    mask = disk(photo, (100, 100), 20)
    with pytest.raises(ValueError, match=r"unknown colour 'blurple'.*#RRGGBB.*purple"):
        recolor(image=photo, mask=mask, color="blurple")
    with pytest.raises(ValueError, match="did you mean"):
        recolor(image=photo, mask=mask, color="purpel")
    assert recolor(image=photo, mask=mask, color="Light Blue").meta["color"] == "Light Blue"


def test_replace_without_weights_is_a_labelled_fallback(photos):
    photo = photos["chelsea"]
    painted = with_red_disk(photo, (200, 150), 40)
    with installed(classical()):
        out = replace(image=painted, mask=disk(photo, (200, 150), 40), prompt="a red ball")
    assert out.meta["fallback"] is True
    assert "not replaced with 'a red ball'" in out.meta["note"]
    assert out.meta["route"]["expert"] == "patchmatch"
    assert red_pixels(out.pixels) == 0


def test_replace_uses_a_generative_backbone_inside_the_hole_only(photos, tiny_backbone):
    photo = photos["chelsea"]
    mask = disk(photo, (200, 150), 40)
    with installed(tiny_backbone):
        out = replace(image=photo, mask=mask, prompt="a green ball")
    hole = hole_for(mask, photo, "replace").pixels > 0
    assert out.meta["backbone"] == "diffusers" and out.meta["generative"] is True and "fallback" not in out.meta
    assert np.abs(out.pixels[hole].astype(int) - photo.pixels[hole].astype(int)).mean() > 10, "the hole was not repainted"
    assert np.array_equal(out.pixels[~hole], photo.pixels[~hole])
